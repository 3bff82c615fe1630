"""Helpers shared by the test modules (fixtures live in conftest.py; modules import these)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Correct-horse-9"

_HASHES: dict[str, str] = {}


def password_hash(password: str) -> str:
    """Argon2 costs ~50 ms: hash each test password once per session."""
    from common.security import hash_password

    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_job(
    client: httpx.AsyncClient,
    task_id: str,
    headers: dict[str, str],
    *,
    timeout: float = 60,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Poll GET /v1/tasks/{id} as a client would, until the job ends (or `until` holds)."""
    done = until or (lambda j: j["status"] in ("succeeded", "failed", "canceled"))
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/v1/tasks/{task_id}", headers=headers)
        assert r.status_code == 200, r.text
        job = r.json()
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not reach the expected state in {timeout}s: {job}")
        await asyncio.sleep(0.05)


def start_api_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The real API in a uvicorn process on a free port, as `make run` starts it."""
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()  # the child keeps its own descriptor
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"API did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def count(db: Any, model: Any, *where: Any) -> int:
    """Rows of `model` (matching `where`) as the database has them now."""
    from sqlalchemy import func, select

    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)
