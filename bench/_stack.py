"""Shared pieces of the benchmarks: a fresh database, the server started the production way
(gunicorn with uvicorn workers), a Celery worker, and a small closed-loop HTTP load generator.

The load generator is Python (httpx, asyncio, keep-alive connections) running on the same
2-core machine as the server, so figures are a floor: the generator takes CPU from the server.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import embedded  # noqa: E402
from common.cli import worker_command  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(prefix: str = "mcq_bench") -> Iterator[dict[str, str]]:
    """A new migrated database on the configured server; env for child processes."""
    server = os.environ["DATABASE_URL"]
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    url = embedded.ensure_database(server, name, drop_first=True)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_KEY_PREFIX": f"{name}:",
        "ENVIRONMENT": "test",
        "JWT_SECRET": "bench-secret-" + "b" * 40,
        "LOG_LEVEL": "warning",
        # Figures measure the endpoints; bench_cache_ratelimit measures the limiter's cost.
        "RATE_LIMIT_ENABLED": "false",
    }
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "heads"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        yield env
    finally:
        embedded.drop_database(server, name)


def login(base: str, username: str, password: str) -> dict[str, str]:
    """Bearer headers for a seeded user, logged in over HTTP."""
    r = httpx.post(f"{base}/v1/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 2, quiet: bool = False) -> Iterator[str]:
    """`quiet`: the server's output (its access log at LOG_LEVEL=info) goes to /dev/null."""
    port = free_port()
    output = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "api.main:create_app()",
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
        ],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=output,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not start")
        time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


@contextmanager
def celery_worker(
    env: dict[str, str], queues: str = "default", concurrency: int = 2
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker in a process group of its own: `os.killpg(proc.pid, ...)` reaches its children."""
    log = Path(tempfile.gettempdir()) / f"bench-worker-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            worker_command(queues, concurrency, f"bench-{uuid.uuid4().hex[:6]}@%h"),
            cwd=ROOT,
            env={**env, "LOG_LEVEL": "info"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.1)
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(30)
            log.unlink(missing_ok=True)


@dataclass
class LoadResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<44} {self.rps:8.1f} req/s   p50 {self.pct(50):7.1f} ms   "
            f"p99 {self.pct(99):7.1f} ms   ({self.requests} requests, {self.errors} errors)"
        )


def load(
    name: str,
    base: str,
    make_request: Callable[[httpx.AsyncClient, int], Any],
    *,
    concurrency: int = 16,
    duration: float = 10.0,
    warmup: float = 1.0,
    expect: int = 200,
) -> LoadResult:
    """Closed loop: `concurrency` clients each send a request as soon as the previous answers."""

    async def run() -> LoadResult:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            start = time.perf_counter()
            measure_from = start + warmup
            stop = measure_from + duration

            async def user(i: int) -> None:
                nonlocal errors
                n = 0
                while (now := time.perf_counter()) < stop:
                    try:
                        r = await make_request(client, i * 1_000_000 + n)
                        ok = r.status_code == expect
                    except httpx.TransportError:
                        ok = False  # counted, not fatal: a figure with its error count
                    n += 1
                    if now >= measure_from:
                        latencies.append(time.perf_counter() - now)
                        errors += not ok

            await asyncio.gather(*(user(i) for i in range(concurrency)))
        return LoadResult(name, len(latencies), errors, duration, latencies)

    return asyncio.run(run())


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
