"""Issue #6 figures: upload throughput through the API and its memory during upload bursts.

The API runs the production way (gunicorn, 2 uvicorn workers) on a fresh database, storing to a
temporary local root (and, with --s3, to a local moto server). No Celery worker runs, so the scan
jobs only queue: the figures are the upload path (stream, sniff, hash, store, row + enqueue).

Printed:
- throughput for 1 MB files, sequential and with 8 concurrent clients (MB/s, files/s), next to
  the baseline of writing the same bytes straight to the storage backend (no HTTP);
- peak RSS of each API worker process (psutil, sampled every 5 ms) during a 100 MB burst
  (100 x 1 MB, 16 at a time; then 10 x 10 MB, 10 at a time), next to its idle RSS.

Rate limits are turned off for the run (RATE_LIMIT_ENABLED=false): they would cap uploads at
30/minute per user. Run: `python -m common.cli exec .venv/bin/python bench/bench_uploads.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from _stack import fresh_database, gunicorn, login

MB = 1024 * 1024
BOUNDARY = "bench-boundary-0123456789"
PASSWORD = "Bench-password-1"


def body_for(size: int) -> bytes:
    """A multipart body with one `size`-byte PDF-looking file (sniffed as application/pdf)."""
    payload = b"%PDF-1.4\n" + os.urandom(size - 9)
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def seed_user(env: dict[str, str]) -> None:
    from common.db import SyncDatabase
    from common.models import User
    from common.security import hash_password
    from common.settings import Settings

    database = SyncDatabase(Settings(database_url=env["DATABASE_URL"]))
    with database.transaction() as session:
        session.add(User(username="bench", role="student", password_hash=hash_password(PASSWORD)))
    database.dispose()


class RssSampler:
    """Peak RSS of the gunicorn workers (children of the master), sampled in a thread."""

    def __init__(self, master: psutil.Process) -> None:
        self.workers = [p for p in master.children() if "gunicorn" in " ".join(p.cmdline())]
        self.peak = {p.pid: 0 for p in self.workers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> dict[int, int]:
        return {p.pid: p.memory_info().rss for p in self.workers}

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, value in self.rss().items():
                self.peak[pid] = max(self.peak[pid], value)
            time.sleep(0.005)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def burst(base: str, auth: dict[str, str], body: bytes, files: int, concurrency: int) -> float:
    """Upload `files` copies of body with `concurrency` clients; seconds taken."""
    headers = {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            queue = list(range(files))

            async def user() -> None:
                while queue:
                    queue.pop()
                    r = await client.post("/v1/files/upload", content=body, headers=headers)
                    if r.status_code != 201:
                        raise RuntimeError(f"upload failed: {r.status_code} {r.text[:300]}")

            start = time.perf_counter()
            await asyncio.gather(*(user() for _ in range(concurrency)))
            return time.perf_counter() - start

    return asyncio.run(run())


def baseline_storage(env: dict[str, str], files: int) -> float:
    """Seconds to write `files` x 1 MB straight to the configured storage, one at a time."""
    from common.files import get_storage
    from common.settings import Settings
    from common.storage import new_key

    settings = Settings(
        **{k.lower(): v for k, v in env.items() if k.startswith(("S3_", "STORAGE_"))}
    )
    storage = get_storage(settings)
    data = os.urandom(MB)
    chunks = [data[i : i + 64 * 1024] for i in range(0, MB, 64 * 1024)]
    storage.write(new_key(), iter(chunks))  # warm up
    start = time.perf_counter()
    for _ in range(files):
        storage.write(new_key(), iter(chunks))
    return time.perf_counter() - start


@contextmanager
def moto() -> Iterator[str]:
    import subprocess

    from _stack import free_port

    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    ).create_bucket(Bucket="bench-uploads")
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def run_backend(name: str, env: dict[str, str], files: int) -> None:
    seed_user(env)
    with gunicorn(env, workers=2) as base:
        auth = login(base, "bench", PASSWORD)
        one_mb = body_for(MB)
        burst(base, auth, one_mb, 4, 2)  # warm up: connections, imports, storage client

        print(f"== uploads to {name} (gunicorn, 2 uvicorn workers; scan jobs only queued) ==")
        base_s = baseline_storage(env, files)
        print(
            f"{'baseline: storage.write, no HTTP, 1 MB':<44} {files / base_s:8.1f} files/s "
            f"{files / base_s:8.1f} MB/s"
        )
        for concurrency in (1, 8):
            seconds = burst(base, auth, one_mb, files, concurrency)
            print(
                f"{f'POST /v1/files/upload 1 MB, {concurrency} client(s)':<44} "
                f"{files / seconds:8.1f} files/s {files / seconds:8.1f} MB/s"
            )

        master = next(p for p in psutil.Process().children() if "gunicorn" in " ".join(p.cmdline()))
        for label, size, count, concurrency in (
            ("100 x 1 MB, 16 concurrent", MB, 100, 16),
            ("10 x 10 MB, 10 concurrent", 10 * MB - 1024, 10, 10),
        ):
            body = body_for(size)
            sampler = RssSampler(master)
            idle = sampler.rss()
            with sampler:
                seconds = burst(base, auth, body, count, concurrency)
            peaks = ", ".join(
                f"{idle[pid] / MB:.0f} -> {sampler.peak[pid] / MB:.0f} MB" for pid in idle
            )
            growth = max(sampler.peak[pid] - idle[pid] for pid in idle) / MB
            print(
                f"{f'burst {label}':<44} {count * size / MB / seconds:8.1f} MB/s   worker RSS "
                f"idle -> peak: {peaks} (max growth {growth:.1f} MB for {count * size / MB:.0f} "
                "MB uploaded)"
            )
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100, help="1 MB files per throughput run")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) backend")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    try:
        with fresh_database("mcq_bench_files") as env:
            env = {**env, "RATE_LIMIT_ENABLED": "false", "STORAGE_LOCAL_ROOT": str(root)}
            run_backend("local disk", env, args.files)
        if not args.no_s3:
            with moto() as endpoint, fresh_database("mcq_bench_files") as env:
                env = {
                    **env,
                    "RATE_LIMIT_ENABLED": "false",
                    "STORAGE_BACKEND": "s3",
                    "S3_BUCKET": "bench-uploads",
                    "S3_ENDPOINT_URL": endpoint,
                    "S3_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench",
                }
                os.environ.update(
                    {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
                )
                run_backend("S3 (moto server on this host)", env, args.files)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
