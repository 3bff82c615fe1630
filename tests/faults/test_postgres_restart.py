"""PostgreSQL restarted under load: requests during the restart fail with 503 (never 500), and
the API recovers by itself once the server is back (stale pooled connections are detected)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from helpers import PASSWORD, ROOT, password_hash

from common import embedded
from common.db import SyncDatabase
from common.models import User
from common.settings import Settings


@pytest.fixture
def own_postgres(test_env):
    from pgserver._commands import pg_ctl

    # Under var/ rather than /tmp/pytest-of-root: as root, pgserver runs the server as its own
    # user, which cannot enter pytest's private temporary folders.
    datadir = ROOT / "var" / f"test-pg-restart-{uuid.uuid4().hex[:6]}"
    server_url, handle = embedded.start_postgres(datadir)
    url = embedded.ensure_database(server_url, "mcq")
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "heads"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    database = SyncDatabase(Settings(database_url=url))
    with database.transaction() as session:
        session.add(
            User(username="loadtester", role="admin", password_hash=password_hash(PASSWORD))
        )
    database.dispose()

    def restart() -> None:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=datadir, user=handle.system_user)

    yield url, restart
    handle.cleanup()
    shutil.rmtree(datadir, ignore_errors=True)


async def test_api_recovers_after_postgres_restart(isolated, own_postgres):
    url, restart = own_postgres
    client, _, _ = await isolated(database_url=url, rate_limit_enabled=False)
    login = await client.post(
        "/v1/auth/login", json={"username": "loadtester", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    h = {"Authorization": f"Bearer {login.json()['access_token']}"}
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()

    async def user() -> None:
        while not stop.is_set():
            r = await client.get("/v1/users/me", headers=h)
            statuses[r.status_code] += 1
            await asyncio.sleep(0.01)

    users = [asyncio.create_task(user()) for _ in range(8)]
    await asyncio.sleep(1)
    await asyncio.to_thread(restart)
    restarted = time.monotonic()
    # Back to healthy answers within seconds, without restarting the API.
    while True:
        r = await client.get("/v1/users/me", headers=h)
        if r.status_code == 200:
            break
        assert time.monotonic() - restarted < 15, r.text
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    before = statuses[200]
    await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*users)
    assert statuses[200] > before  # still serving after recovery
    assert set(statuses) <= {200, 503}, statuses
