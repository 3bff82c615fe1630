"""Issue #12 figures: what one anonymous oversized request costs an API worker.

The API runs the production way (gunicorn, one uvicorn worker, so the figure is that worker's)
on a fresh database. A raw socket sends each request's head, then the body in 1 MiB chunks,
and stops sending as soon as an answer arrives (or the server closes the connection), so the
figures show how much the server read before refusing:

- 150 MB POST to /v1/auth/refresh with Content-Length;
- the same body chunked (Transfer-Encoding: chunked, no length);
- 40 MB tokenless multipart POST to /v1/tests/1/submissions/import.

Printed per request: status, MB sent before the answer (includes what the kernel buffers),
seconds, and the worker's idle and peak RSS (psutil, sampled every 5 ms).
Run: `python -m common.cli exec .venv/bin/python bench/bench_body_limits.py`.

Measured on the 2-core machine (worker RSS idle -> peak):
- before the body limit: 150 MB refresh read whole, 422 after 1.3 s, 124 -> 424 MB; chunked,
  the same worker 424 -> 724 MB (the memory was not given back); the tokenless 40 MB import
  read whole before its 401.
- after: 413 for both refresh requests after ~2 MB sent (kernel buffers), 124 -> 124 MB; the
  tokenless import answered 401 after ~4 MB sent, none of it read by the app.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from urllib.parse import urlsplit

import psutil
from _stack import fresh_database, gunicorn

MB = 1024 * 1024
CHUNK = b"x" * MB


class PeakRss:
    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _answered(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def send(
    base: str, path: str, head: dict[str, str], megabytes: int, chunked: bool, prelude: bytes
) -> str:
    """Send `prelude`, then megabytes of filler, until the server answers; 'status, MB sent,
    seconds'."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=120)
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {len(prelude) + megabytes * MB}")
    start = time.perf_counter()
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    if prelude:
        sock.sendall(b"%x\r\n%s\r\n" % (len(prelude), prelude) if chunked else prelude)
    sent = 0
    try:
        for _ in range(megabytes):
            if _answered(sock):
                break
            sock.sendall(b"%x\r\n%s\r\n" % (MB, CHUNK) if chunked else CHUNK)
            sent += 1
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection after answering
    answer = b""
    try:
        while b"\r\n" not in answer:
            part = sock.recv(4096)
            if not part:
                break
            answer += part
    except OSError:
        pass
    sock.close()
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(connection closed)"
    return f"{status:<34} sent {sent:4d} MB  {time.perf_counter() - start:6.2f} s"


def main() -> None:
    with fresh_database() as env, gunicorn(env, workers=1) as base:
        master = next(p for p in psutil.Process().children() if "gunicorn" in " ".join(p.cmdline()))
        worker = master.children()[0]
        boundary = "bench-boundary"
        file_part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        cases = [
            (
                "150 MB POST /v1/auth/refresh, Content-Length",
                "/v1/auth/refresh",
                {"Content-Type": "application/json"},
                150,
                False,
                b"",
            ),
            (
                "150 MB POST /v1/auth/refresh, chunked",
                "/v1/auth/refresh",
                {"Content-Type": "application/json"},
                150,
                True,
                b"",
            ),
            (
                "40 MB tokenless POST .../submissions/import",
                "/v1/tests/1/submissions/import",
                {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                40,
                False,
                file_part,
            ),
        ]
        print("== oversized anonymous requests (gunicorn, 1 uvicorn worker) ==")
        for label, path, head, megabytes, chunked, prelude in cases:
            idle = worker.memory_info().rss
            with PeakRss(worker) as rss:
                line = send(base, path, head, megabytes, chunked, prelude)
                time.sleep(0.2)
            print(
                f"{label:<46} {line}  RSS idle {idle / MB:5.0f} MB, "
                f"peak {rss.peak / MB:5.0f} MB (+{(rss.peak - idle) / MB:.0f})"
            )


if __name__ == "__main__":
    main()
