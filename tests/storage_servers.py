"""Real servers for the storage, files and scanning tests: moto (S3 over HTTP) and clamd.

The fixtures are registered for the whole suite by tests/conftest.py; the helpers are imported
by test modules (`from storage_servers import minimal_pdf, ...`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import boto3
import httpx
import pytest

from common.scanning import ClamdClient

BUCKET = "test-uploads"
REGION = "us-east-1"
AWS_ENV = {
    # Dummy credentials for the default AWS chain (the API and worker build their own
    # clients from the settings); nothing real is reachable with them.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
CLAMD_PACKAGE_HINT = (
    "clamd not found: install the Debian package clamav-daemon "
    "(apt-get install -y clamav-daemon); the scanning tests need a real clamd"
)
# A one-signature database (EICAR by MD5): clamd starts in well under a second, offline.
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float) -> None:
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
    port = free_port()
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
        wait_for(up, proc, "moto_server", timeout=30)
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
class ClamdServer:
    socket_path: str
    tcp_port: int
    proc: subprocess.Popen = field(repr=False)
    _out: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self._out.close()


def clamd_executable() -> str:
    exe = shutil.which("clamd") or next(
        (p for p in ("/usr/sbin/clamd", "/usr/local/sbin/clamd") if Path(p).exists()), None
    )
    if exe is None:
        pytest.fail(CLAMD_PACKAGE_HINT)
    return exe


def start_clamd(base: Path, socket_path: Path | None = None) -> ClamdServer:
    """A real clamd in the foreground with the EICAR-only database, ready when returned."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "db").mkdir(exist_ok=True)
    (base / "db" / "test.hdb").write_text(EICAR_HDB)
    sock = socket_path or base / "clamd.sock"
    port = free_port()
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
        [clamd_executable(), "-c", str(base / "clamd.conf")],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    server = ClamdServer(str(sock), port, proc, out)
    try:
        wait_for(sock.exists, proc, f"clamd (log: {base / 'clamd.log'})", timeout=30)
        ClamdClient(str(sock), timeout=10).ping()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """A real clamd with a one-signature database (EICAR by MD5): starts in well under 1 s."""
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clamd(clamd_server: ClamdServer) -> ClamdClient:
    return ClamdClient(clamd_server.socket_path, timeout=10)


def eicar_bytes() -> bytes:
    # Assembled at run time so this file itself never matches an antivirus signature.
    parts = [r"X5O!P%@AP[4\PZX54(P^)7CC)7}", "$EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!", "$H+H*"]
    return "".join(parts).encode("ascii")


@pytest.fixture(scope="session")
def eicar() -> bytes:
    return eicar_bytes()


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
