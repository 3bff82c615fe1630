"""Test fixtures: a fresh database on a real PostgreSQL, a real Redis, a real Celery worker.

With DATABASE_URL / REDIS_URL set (CI), tests use those servers; otherwise they start the
embedded ones. Each session gets its own database and Redis key prefix, so parallel sessions
on one machine never see each other's rows, queues or rate-limit counters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import PASSWORD, ROOT, password_hash
from sqlalchemy.orm import Session

_RUN_ID = uuid.uuid4().hex[:8]
_servers: dict[str, Any] = {}


def _start_servers(tmp_root: Path) -> dict[str, str]:
    from common import embedded

    env: dict[str, str] = {}
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url:
        server_url, handle = embedded.start_postgres(ROOT / "var" / "test-postgres")
        _servers["pg"] = handle
    db_name = f"mcq_test_{_RUN_ID}"
    env["DATABASE_URL"] = embedded.ensure_database(server_url, db_name, drop_first=True)
    _servers["pg_server_url"], _servers["db_name"] = server_url, db_name
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        redis_url, proc = embedded.start_redis(tmp_root / "redis", persist=False)
        _servers["redis_proc"] = proc
    env["REDIS_URL"] = redis_url
    env["REDIS_KEY_PREFIX"] = f"t{_RUN_ID}:"
    env["ENVIRONMENT"] = "test"
    env["JWT_SECRET"] = "test-secret-" + "x" * 40
    env["LOG_LEVEL"] = "warning"
    # Tests poll task status many times a minute; the limits themselves are tested with their
    # defaults (tests/api/test_rate_limits.py) and with small explicit ones.
    env["RATE_LIMIT_USER"] = "100000/minute"
    return env


@pytest.fixture(scope="session")
def test_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Servers up, a fresh migrated database, and the environment pointing at them."""
    env = _start_servers(tmp_path_factory.mktemp("servers"))
    os.environ.update(env)
    from common.settings import get_settings

    get_settings.cache_clear()
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "heads"],
        cwd=ROOT,
        check=True,
        env=dict(os.environ),
        capture_output=True,
    )
    yield env
    from common import embedded

    embedded.drop_database(_servers["pg_server_url"], _servers["db_name"])
    if proc := _servers.get("redis_proc"):
        proc.terminate()
        proc.wait(5)


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Any:
    from common.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def sync_db(settings: Any) -> Iterator[Any]:
    from common.db import SyncDatabase

    database = SyncDatabase(settings)
    yield database
    database.dispose()


def truncate_all(sync_db: Any) -> None:
    from sqlalchemy.exc import OperationalError

    from common.models import Base

    # DELETE beats TRUNCATE on tiny tables: TRUNCATE rewrites files and takes heavy locks.
    # A job of the previous test may still be finishing in the shared worker; when its
    # transaction and this cleanup deadlock, PostgreSQL aborts one side: retry ours.
    for attempt in range(5):
        try:
            with sync_db.transaction() as session:
                for table in reversed(Base.metadata.sorted_tables):
                    session.execute(table.delete())
            return
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))


@pytest.fixture
def db(sync_db: Any) -> Iterator[Session]:
    """A sync session for arranging and inspecting rows; the database starts empty."""
    truncate_all(sync_db)
    with sync_db.sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
async def app(settings: Any) -> AsyncIterator[Any]:
    from api.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def clear_rate_limits(settings: Any) -> None:
    """Rate-limit counters live in Redis across tests; each test starts with none."""
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(r.scan_iter(f"{settings.redis_key_prefix}rl*", count=1000))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


@pytest.fixture
async def client(app: Any, db: Session, settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    clear_rate_limits(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_user(db: Session) -> Callable[..., Any]:
    from common.models import User

    def make(role: str = "student", username: str | None = None, password: str = PASSWORD) -> Any:
        user = User(
            username=username or f"{role}-{uuid.uuid4().hex[:8]}",
            role=role,
            password_hash=password_hash(password),
        )
        db.add(user)
        db.commit()
        return user

    return make


@pytest.fixture
def auth_for(db: Session, settings: Any) -> Callable[[Any], dict[str, str]]:
    """Bearer headers for a user, minted for a real session row (no password hashing)."""
    from datetime import UTC, datetime, timedelta

    from common.models import AuthSession
    from common.security import encode_token

    def headers(user: Any) -> dict[str, str]:
        session = AuthSession(
            id=uuid.uuid4(),
            user_id=user.id,
            current_refresh_jti=uuid.uuid4(),
            refresh_expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        db.add(session)
        db.commit()
        token, _ = encode_token(
            settings, user_id=user.id, role=user.role, session_id=session.id, typ="access"
        )
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def exam(db: Session, instructor: Any) -> Any:
    """A test (the exam model) owned by `instructor`, with no questions: enough for attendance,
    check-ins and face jobs."""
    from common.models.tests import Exam

    exam = Exam(owner_id=instructor.id, title="Midterm")
    db.add(exam)
    db.commit()
    return exam


@pytest.fixture
def admin(make_user: Callable[..., Any]) -> Any:
    return make_user("admin")


@pytest.fixture
def instructor(make_user: Callable[..., Any]) -> Any:
    return make_user("instructor")


@pytest.fixture
def student(make_user: Callable[..., Any]) -> Any:
    return make_user("student")


class WorkerProcess:
    """A real `celery worker` subprocess, with its log kept for assertions and debugging."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str, concurrency: int) -> None:
        self.log_path = log_path
        self.name = f"w{uuid.uuid4().hex[:6]}@%h"
        from common.cli import worker_command

        cmd = worker_command(queues, concurrency, self.name)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.wait_ready()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def children(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self, sig: int | None = None) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig or signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def start_worker(
    test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(
        queues: str = "default,biometrics", concurrency: int = 2, **overrides: str
    ) -> WorkerProcess:
        env = {**os.environ, **test_env, "LOG_LEVEL": "info", **overrides}
        log = tmp_path_factory.mktemp("worker") / "worker.log"
        worker = WorkerProcess(env, log, queues, concurrency)
        started.append(worker)
        return worker

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="session")
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """One shared worker on both queues for the whole session."""
    return start_worker()


@pytest.fixture
async def isolated(
    settings: Any, test_env: dict[str, str], start_worker: Callable[..., WorkerProcess], db: Session
) -> AsyncIterator[Callable[..., Any]]:
    """An API app and workers with their own Redis key prefix (and optionally their own Redis),
    so a test can kill workers or the broker without disturbing the rest of the session."""
    from contextlib import AsyncExitStack

    from api.main import create_app
    from common.settings import Settings

    stack = AsyncExitStack()

    async def build(
        **overrides: Any,
    ) -> tuple[httpx.AsyncClient, Any, Callable[..., WorkerProcess]]:
        prefix = f"iso{uuid.uuid4().hex[:6]}:"
        values = {"redis_key_prefix": prefix, **overrides}
        iso_settings = Settings(**values)
        application = create_app(iso_settings)
        await stack.enter_async_context(application.router.lifespan_context(application))
        transport = httpx.ASGITransport(app=application)
        c = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://testserver")
        )
        env = {k.upper(): str(v) for k, v in values.items()}

        def worker_factory(**more: str) -> WorkerProcess:
            return start_worker(**{**env, **more})

        return c, iso_settings, worker_factory

    yield build
    await stack.aclose()


class PeerClients:
    """HTTP clients of one app, each seen by the app as coming from a TCP peer address of the
    test's choosing (the ASGI `client`), e.g. a proxy or a client on another network."""

    def __init__(self, app: Any, settings: Any) -> None:
        self.app = app
        self.settings = settings

    def __call__(self, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def peer_app(settings: Any, db: Session) -> AsyncIterator[Callable[..., Any]]:
    """`await peer_app(**settings overrides)`: an API app with its own Redis key prefix (so
    fresh rate-limit counters), as PeerClients."""
    from contextlib import AsyncExitStack

    from api.main import create_app
    from common.settings import Settings

    stack = AsyncExitStack()

    async def build(**overrides: Any) -> PeerClients:
        app_settings = Settings(**{"redis_key_prefix": f"peer{uuid.uuid4().hex[:6]}:", **overrides})
        application = create_app(app_settings)
        await stack.enter_async_context(application.router.lifespan_context(application))
        return PeerClients(application, app_settings)

    yield build
    await stack.aclose()


# Students with face enrollments, for the face job tests (tests/face_photos.py).
from face_photos import enrolled, people, templates  # noqa: E402, F401

# Real S3 (moto server) and clamd for the storage, files and scanning tests; the fixtures live
# in tests/storage_servers.py, registered here for every directory.
from storage_servers import (  # noqa: E402, F401
    boto_session,
    clamd,
    clamd_server,
    eicar,
    moto_endpoint,
    pdf_bytes,
    s3_bucket,
)
