"""Write throughput of common.storage: local disk and S3 on a local moto server.

Run by hand: `.venv/bin/python bench/bench_storage.py [--files 200] [--big-mb 64]`.
Prints MB/s and files/s for many 1 MB files, then one large streamed body per backend, with
the Python heap peak (tracemalloc) to show that memory stays bounded by a chunk or a part.
For S3 it also times boto3's own `upload_fileobj` on the same body, for comparison.
moto keeps objects in its own memory and runs on this host, so S3 figures measure the client
path (signing, HTTP, multipart bookkeeping), not a real network.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import httpx

from common.storage import S3Storage, Storage, StorageConfig, make_storage, new_key

MB = 1024 * 1024
CHUNK = 64 * 1024


def chunks(total: int) -> Iterator[bytes]:
    block = b"\xa5" * CHUNK
    for start in range(0, total, CHUNK):
        yield block[: min(CHUNK, total - start)]


class ChunkReader:
    """A non-seekable file-like view of chunks(), as upload_fileobj would get from a request."""

    def __init__(self, total: int) -> None:
        self.it, self.buf = chunks(total), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.it)
            except StopIteration:
                break
        out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
        return out


def timed(fn: Callable[[], object], *, trace: bool = False) -> tuple[float, int]:
    """Seconds taken, and the Python heap peak when traced (tracing slows the run down)."""
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
        seconds = time.perf_counter() - start
        return seconds, tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        if trace:
            tracemalloc.stop()


def bench_small(name: str, storage: Storage, files: int) -> None:
    def run() -> None:
        for _ in range(files):
            storage.write(new_key("bench"), chunks(MB), max_size=MB)

    storage.write(new_key("bench"), chunks(MB))  # warm up (connections, directories)
    seconds, _ = timed(run)
    print(f"{name:<28} {files} x 1 MB: {files / seconds:8.1f} files/s {files / seconds:8.1f} MB/s")


def bench_big(name: str, fn: Callable[[], object], size: int) -> None:
    seconds, _ = timed(fn)
    _, peak = timed(fn, trace=True)
    print(
        f"{name:<28} 1 x {size // MB} MB: {size / MB / seconds:8.1f} MB/s"
        f"   peak Python heap {peak / MB:6.1f} MB"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=64)
    args = parser.parse_args()
    big = args.big_mb * MB

    with tempfile.TemporaryDirectory() as tmp:
        local = make_storage(StorageConfig(backend="local", local_root=Path(tmp)))
        bench_small("local", local, args.files)
        bench_big("local streamed", lambda: local.write("big", chunks(big)), big)

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        session.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        config = StorageConfig(backend="s3", s3_bucket="bench", endpoint_url=endpoint)
        s3 = make_storage(config, session=session)
        assert isinstance(s3, S3Storage)
        bench_small("s3 (moto)", s3, args.files)
        bench_big("s3 streamed multipart 8 MB", lambda: s3.write("big", chunks(big)), big)
        bench_big(
            "s3 boto3 upload_fileobj",
            lambda: s3.client.upload_fileobj(ChunkReader(big), "bench", "big2"),
            big,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
