"""The clamd client and scan() against a REAL clamd (see the clamd_server fixture)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from face_photos import FACES

from common.scanning import ClamdClient, ScanError, ScannerUnavailable, scan

# clamd tags hits from databases that are not officially signed (like the fixture's).
EICAR_NAME = "Eicar-Test-Signature.UNOFFICIAL"


def test_ping(clamd: ClamdClient) -> None:
    clamd.ping()


def test_version_names_engine_and_signatures(clamd: ClamdClient) -> None:
    assert clamd.version().startswith("ClamAV ")


def test_eicar_detected(clamd: ClamdClient, eicar: bytes) -> None:
    assert len(eicar) == 68
    assert clamd.instream([eicar]) == EICAR_NAME


def test_eicar_detected_across_many_small_frames(clamd_server, eicar: bytes) -> None:
    client = ClamdClient(clamd_server.socket_path, chunk_size=7)
    assert client.instream([eicar[:30], eicar[30:]]) == EICAR_NAME


def test_clean_bytes(clamd: ClamdClient, pdf_bytes: bytes) -> None:
    assert clamd.instream([pdf_bytes]) is None
    assert clamd.instream([]) is None


def test_tcp_address(clamd_server, eicar: bytes) -> None:
    client = ClamdClient.from_url(f"tcp://127.0.0.1:{clamd_server.tcp_port}", timeout=10)
    assert client.address == ("127.0.0.1", clamd_server.tcp_port)
    client.ping()
    assert client.instream([eicar]) == EICAR_NAME


def test_from_url_unix() -> None:
    assert ClamdClient.from_url("unix:///run/clamav/clamd.ctl").address == "/run/clamav/clamd.ctl"
    assert ClamdClient.from_url("/tmp/c.sock").address == "/tmp/c.sock"


def test_scan_verdicts_with_clamd(clamd: ClamdClient, eicar: bytes, pdf_bytes: bytes) -> None:
    v = scan(eicar, declared_type="text/plain", clamd=clamd)
    assert (v.status, v.reason) == ("rejected", "malware:" + EICAR_NAME)
    assert v.virus_scan == "infected"
    pdf = scan(pdf_bytes, declared_type="application/pdf", clamd=clamd)
    assert pdf.clean and pdf.virus_scan == "clean"
    # Without a scanner the verdict says so instead of passing for "ClamAV found nothing".
    unscanned = scan(eicar, declared_type="text/plain", clamd=None)
    assert unscanned.clean and unscanned.virus_scan == "skipped"
    # Refused by the type checks first: ClamAV never saw it.
    assert scan(b"a,b\n1,2\n3\n", declared_type="text/csv", clamd=clamd).virus_scan is None
    with open(FACES / "obama.jpg", "rb") as f:
        assert scan(f, declared_type="image/jpeg", clamd=clamd).clean
    png = (FACES / "lin-manuel-miranda.png").read_bytes()
    assert scan(png, declared_type="image/png", clamd=clamd).clean


def test_stream_over_clamd_limit_is_a_non_retryable_error(clamd: ClamdClient) -> None:
    def body() -> Iterator[bytes]:  # the fixture's clamd has StreamMaxLength 20M
        for _ in range(21 * 16):
            yield b"\0" * 65536

    with pytest.raises(ScanError) as info:
        clamd.instream(body())
    assert not info.value.retryable
    assert not isinstance(info.value, ScannerUnavailable)


def test_unreachable_clamd_is_retryable(tmp_path: Path, pdf_bytes: bytes) -> None:
    dead = ClamdClient(str(tmp_path / "no.sock"), timeout=1)
    with pytest.raises(ScannerUnavailable) as info:
        scan(pdf_bytes, declared_type="application/pdf", clamd=dead)
    assert info.value.retryable
    assert info.value.code == "scanner_unavailable"
    with pytest.raises(ScannerUnavailable):
        ClamdClient(("127.0.0.1", 1), timeout=1).ping()


@pytest.fixture
def fake_clamd(tmp_path: Path) -> Iterator[tuple[str, list[bytes | None]]]:
    """A unix socket that plays a misbehaving clamd: each connection gets the next reply
    from the list (None: read everything and never answer)."""
    path = str(tmp_path / "fake.sock")
    replies: list[bytes | None] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    server.settimeout(0.1)  # so the loop notices `stop` (close() does not wake accept())
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                reply = replies.pop(0) if replies else None
                conn.settimeout(5)
                buf = b""
                while not buf.endswith(b"\0\0\0\0"):  # until the zero-length terminator
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                if reply is None:
                    stop.wait(5)
                else:
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, replies
    stop.set()
    thread.join(timeout=10)
    server.close()


def test_hung_clamd_times_out_as_unavailable(fake_clamd) -> None:
    path, replies = fake_clamd
    replies.append(None)
    started = time.monotonic()
    with pytest.raises(ScannerUnavailable):
        ClamdClient(path, timeout=0.5).instream([b"data"])
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"stream: Can't allocate memory ERROR\0", ScannerUnavailable),
        (b"garbage\0", ScannerUnavailable),
        (b"", ScannerUnavailable),  # hangs up without a word
        (b"INSTREAM size limit exceeded. ERROR\0", ScanError),
    ],
)
def test_error_replies(fake_clamd, reply: bytes, error: type[Exception]) -> None:
    path, replies = fake_clamd
    replies.append(reply)
    with pytest.raises(error):
        ClamdClient(path, timeout=2).instream([b"data"])


def test_found_reply_in_the_documented_form(fake_clamd) -> None:
    path, replies = fake_clamd
    replies.append(b"stream: Eicar-Test-Signature FOUND\0")
    assert ClamdClient(path, timeout=2).instream([b"x"]) == "Eicar-Test-Signature"


def test_signature_names_are_sanitised(fake_clamd) -> None:
    path, replies = fake_clamd
    replies.append(b"stream: Evil<script>\x1b[31m FOUND\0")
    assert ClamdClient(path, timeout=2).instream([b"x"]) == "Evil_script___31m"


def test_make_runs_clamd_config_starts_a_real_clamd(tmp_path: Path, eicar: bytes) -> None:
    """The clamd.conf `make run` writes (common.local_clamd), with this suite's own EICAR-only
    database standing in for the system one."""
    import subprocess

    from storage_servers import EICAR_HDB, clamd_executable, wait_for

    from common import local_clamd

    database = tmp_path / "db"
    database.mkdir()
    (database / "test.hdb").write_text(EICAR_HDB)
    conf, sock = local_clamd.write_config(tmp_path / "run", database, max_upload=10 * 1024 * 1024)
    proc = subprocess.Popen(
        [clamd_executable(), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(sock.exists, proc, "clamd with make run's config", timeout=30)
        client = ClamdClient(str(sock), timeout=10)
        client.ping()
        assert client.instream([eicar]) == EICAR_NAME
    finally:
        proc.terminate()
        proc.wait(10)
