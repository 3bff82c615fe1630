"""Database engines. One DATABASE_URL; the API uses asyncpg, the worker psycopg2.

Engines are created lazily and per process: a Celery child must build its own after the fork
(see worker.app), and tests point the same code at their own database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

# Registers the session hooks that tell the API processes which principals changed, in every
# process that writes through the ORM (API, worker, CLI).
from common import principal_invalidation  # noqa: F401
from common.settings import Settings, get_settings


def _with_driver(url: str, driver: str) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL must point at PostgreSQL")
    return parsed.set(drivername=f"postgresql+{driver}")


def async_url(url: str) -> URL:
    return _with_driver(url, "asyncpg")


def sync_url(url: str) -> URL:
    return _with_driver(url, "psycopg2")


def make_async_engine(settings: Settings) -> AsyncEngine:
    # pool_pre_ping: a PostgreSQL restart leaves dead sockets in the pool; pinging on checkout
    # lets the API recover by itself instead of failing the first request on each connection.
    return create_async_engine(
        async_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def make_sync_engine(settings: Settings, *, pool_size: int = 2) -> Engine:
    return create_engine(
        sync_url(settings.database_url),
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


COMMIT_ERRORS = "after_commit_errors"  # session.info: what after_commit hooks could not raise


def report_after_commit(session: Session, error: Exception) -> None:
    """For after_commit hooks (common.jobs publishing): raising inside the hook would leave the
    session half-closed, so the error is handed to the commit, which raises it when done."""
    session.info.setdefault(COMMIT_ERRORS, []).append(error)


class UnitOfWorkSession(AsyncSession):
    """The API's session. A use case's writes (and the jobs it enqueues) are one transaction,
    committed by the service with `await session.commit()`; what must follow the commit runs
    in after_commit hooks (cache versions: common.cache_invalidation; publishing jobs:
    common.jobs), and an error they report is raised here, once the commit is complete."""

    async def commit(self) -> None:
        self.info.pop(COMMIT_ERRORS, None)
        await super().commit()
        errors = self.info.pop(COMMIT_ERRORS, None)
        if errors:
            raise errors[0]


class AsyncDatabase:
    """The API's engine and session factory, created once at start-up. `info` (e.g.
    common.cache_invalidation.session_info) is every session's `info`."""

    def __init__(
        self,
        settings: Settings | None = None,
        info: dict[str, Any] | None = None,
        session_class: type[UnitOfWorkSession] = UnitOfWorkSession,
    ) -> None:
        self.engine = make_async_engine(settings or get_settings())
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=session_class, expire_on_commit=False, info=dict(info or {})
        )

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def dispose(self) -> None:
        await self.engine.dispose()


class SyncDatabase:
    """The worker's engine; built in each child after the fork. `info` as for AsyncDatabase."""

    def __init__(
        self, settings: Settings | None = None, info: dict[str, Any] | None = None
    ) -> None:
        self.engine = make_sync_engine(settings or get_settings())
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, info=dict(info or {}))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction per use case: commit on success, roll back on any error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
