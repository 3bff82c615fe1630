"""Fixtures for the storage/scanning suite: a real moto S3 server and a real clamd."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest

from common.scanning import ClamdClient
from common.storage import S3Storage, Storage, StorageConfig, make_storage

BUCKET = "test-uploads"
REGION = "us-east-1"
CLAMD_PACKAGE_HINT = (
    "clamd not found: install the Debian package clamav-daemon "
    "(apt-get install -y clamav-daemon); the scanning tests need a real clamd"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with code {proc.returncode} before becoming ready")
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} not ready after {timeout} s")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto in server mode, so boto3 really signs and sends HTTP requests."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    try:
        _wait_for(up, proc, "moto_server", timeout=30)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def boto_session() -> boto3.Session:
    # Explicit dummy credentials: nothing from the environment, and no real AWS reachable.
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="session")
def s3_bucket(moto_endpoint: str, boto_session: boto3.Session) -> str:
    boto_session.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=BUCKET)
    return BUCKET


@dataclass
class Backend:
    name: str
    storage: Storage
    leftovers: Callable[[], list[str]]  # everything the backend holds (incl. temp/partial)


def local_backend(root: Path) -> Backend:
    storage = make_storage(StorageConfig(backend="local", local_root=root, prefix="uploads"))
    return Backend(
        "local", storage, lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    )


def s3_backend(endpoint: str, bucket: str, session: boto3.Session, **kw: object) -> Backend:
    prefix = f"t-{uuid.uuid4().hex}"  # one bucket, a fresh prefix per test
    config = StorageConfig(
        backend="s3",
        s3_bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        region=REGION,
        **kw,  # type: ignore[arg-type]
    )
    storage = make_storage(config, session=session)
    assert isinstance(storage, S3Storage)
    client = storage.client

    def leftovers() -> list[str]:
        objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
        return sorted([o["Key"] for o in objects] + [f"upload:{u['Key']}" for u in uploads])

    return Backend("s3", storage, leftovers)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return local_backend(tmp_path / "store")
    return s3_backend(
        request.getfixturevalue("moto_endpoint"),
        request.getfixturevalue("s3_bucket"),
        request.getfixturevalue("boto_session"),
        s3_part_size=5 * 1024 * 1024,  # smallest legal part, so multi-MB bodies go multipart
    )


@pytest.fixture
def s3(moto_endpoint: str, s3_bucket: str, boto_session: boto3.Session) -> Backend:
    return s3_backend(moto_endpoint, s3_bucket, boto_session)


@dataclass(frozen=True)
class ClamdServer:
    socket_path: str
    tcp_port: int


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """A real clamd with a one-signature database (EICAR by MD5): starts in well under 1 s."""
    exe = shutil.which("clamd") or next(
        (p for p in ("/usr/sbin/clamd", "/usr/local/sbin/clamd") if Path(p).exists()), None
    )
    if exe is None:
        pytest.fail(CLAMD_PACKAGE_HINT)
    base = tmp_path_factory.mktemp("clamd")
    (base / "db").mkdir()
    (base / "db" / "test.hdb").write_text(
        "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"
    )
    sock = base / "clamd.sock"
    port = _free_port()
    (base / "clamd.conf").write_text(
        f"LocalSocket {sock}\n"
        f"TCPSocket {port}\n"
        "TCPAddr 127.0.0.1\n"
        f"DatabaseDirectory {base / 'db'}\n"
        f"TemporaryDirectory {base}\n"
        f"LogFile {base / 'clamd.log'}\n"
        "Foreground yes\n"
        "StreamMaxLength 20M\n"
    )
    out = (base / "clamd.out").open("wb")  # it also logs to stdout in the foreground
    proc = subprocess.Popen(
        [exe, "-c", str(base / "clamd.conf")],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(sock.exists, proc, f"clamd (log: {base / 'clamd.log'})", timeout=30)
        ClamdClient(str(sock), timeout=10).ping()
        yield ClamdServer(str(sock), port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out.close()


@pytest.fixture
def clamd(clamd_server: ClamdServer) -> ClamdClient:
    return ClamdClient(clamd_server.socket_path, timeout=10)


@pytest.fixture(scope="session")
def eicar() -> bytes:
    # Assembled at run time so this file itself never matches an antivirus signature.
    parts = [r"X5O!P%@AP[4\PZX54(P^)7CC)7}", "$EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!", "$H+H*"]
    return "".join(parts).encode("ascii")


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    return minimal_pdf()


def minimal_pdf(text: str = "Hello") -> bytes:
    """A small but structurally valid PDF (correct xref offsets) with one page of text."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
