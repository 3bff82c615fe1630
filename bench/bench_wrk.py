"""wrk against the production server (gunicorn, 2 uvicorn workers): GET /v1/users/me, a
100-row list (GET /v1/users?limit=100 as an admin) and a no-database endpoint (/health/live),
`wrk -t1 -c32 -d15s`, median of 3 runs each, with the JSON access log on (LOG_LEVEL=info,
written to /dev/null). Rate limits are off: wrk's 32 connections share one token and address.

The issue's reference, fastapi/full-stack-fastapi-template, needs Python 3.14; where it cannot
run, compare with the figures measured beside it (538 / 206 / 13,481 req/s). Skipped when
`wrk` is not installed.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys

import httpx
from _stack import fresh_database, gunicorn

RUNS = 3
ARGS = ["-t1", "-c32", "-d15s"]


def seed(env: dict[str, str]) -> None:
    import os

    os.environ.update(env)
    from common.db import SyncDatabase
    from common.models import User
    from common.security import hash_password
    from common.settings import Settings

    db = SyncDatabase(Settings())
    digest = hash_password("wrk-password-1")
    with db.transaction() as session:
        session.add(User(username="wrk-admin", role="admin", password_hash=digest))
        session.add_all(
            User(username=f"wrk-student-{i:03d}", role="student", password_hash=digest)
            for i in range(120)
        )
    db.dispose()


def wrk(url: str, token: str | None) -> float:
    header = ["-H", f"Authorization: Bearer {token}"] if token else []
    out = subprocess.run(
        ["wrk", *ARGS, *header, url], capture_output=True, text=True, check=True
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} non-2xx answers")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found, out
    return float(found.group(1))


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): skipped")
        return 0
    with fresh_database("mcq_wrk") as env:
        env = {**env, "LOG_LEVEL": "info"}
        seed(env)
        with gunicorn(env, workers=2, quiet=True) as base:
            r = httpx.post(
                f"{base}/v1/auth/login",
                json={"username": "wrk-admin", "password": "wrk-password-1"},
                timeout=30,
            )
            token = r.json()["access_token"]
            rows = httpx.get(
                f"{base}/v1/users?limit=100", headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert len(rows) == 100, rows
            for name, path, auth in (
                ("GET /v1/users/me", "/v1/users/me", token),
                ("GET /v1/users?limit=100 (100 rows)", "/v1/users?limit=100", token),
                ("GET /health/live (no database)", "/health/live", None),
            ):
                figures = [wrk(f"{base}{path}", auth) for _ in range(RUNS)]
                runs = ", ".join(f"{f:.0f}" for f in figures)
                print(f"{name:<40} median {statistics.median(figures):8.0f} req/s  ({runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
