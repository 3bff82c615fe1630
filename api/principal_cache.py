"""The per-process cache of (session, user) that makes an authenticated request cost no
database round trip, and the Redis pub/sub listener that keeps it honest.

An entry lives PRINCIPAL_CACHE_SECONDS at most. What drops entries is decided in one place,
common.principal_invalidation (session hooks on every User/AuthSession change); this module
applies those keys locally, publishes them after an API commit, and listens for the other
processes' messages. While the listener is not subscribed (start-up, Redis down, reconnecting)
the cache is bypassed and emptied, so a lost connection cannot keep a revoked session alive; a
message lost while subscribed is bounded by the TTL. A database read that raced an invalidation
is not stored (the generation counter).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from sqlalchemy import inspect

from common import principal_invalidation as invalidation
from common.db import UnitOfWorkSession
from common.metrics import PRINCIPAL_CACHE
from common.models import User
from common.settings import Settings

log = structlog.get_logger(__name__)

MAX_ENTRIES = 100_000  # beyond this the cache starts over: memory stays bounded


@dataclass(frozen=True)
class _Entry:
    user: User
    expires: float


def snapshot(user: User) -> User:
    """A copy bound to no session, safe to share between requests."""
    columns = inspect(User).column_attrs
    return User(**{attr.key: getattr(user, attr.key) for attr in columns})


class PrincipalCache:
    def __init__(self, settings: Settings) -> None:
        self.ttl = settings.principal_cache_seconds
        self.redis_url = settings.redis_url
        self.live = False
        self.generation = 0
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self._remove_listener = invalidation.add_listener(self.apply)
        self._redis: aioredis.Redis | None = None

    # ------------------------------------------------------------------ lookups
    def get(self, session_id: uuid.UUID, user_id: int) -> User | None:
        if not self.live:
            PRINCIPAL_CACHE.labels("bypass").inc()
            return None
        entry = self._entries.get(session_id)
        if entry is None or entry.user.id != user_id or entry.expires < time.monotonic():
            PRINCIPAL_CACHE.labels("miss").inc()
            return None
        PRINCIPAL_CACHE.labels("hit").inc()
        return entry.user

    def put(self, session_id: uuid.UUID, user: User, generation: int) -> None:
        """Store what was read when the generation was `generation`, unless an invalidation
        arrived since (the read may predate it)."""
        if not self.live or generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[session_id] = _Entry(snapshot(user), time.monotonic() + self.ttl)

    # ------------------------------------------------------------------ invalidation
    def apply(self, keys: set[str]) -> None:
        self.generation += 1
        if invalidation.EVERYTHING in keys:
            self._entries.clear()
            return
        doomed = [
            sid
            for sid, entry in self._entries.items()
            if invalidation.user_key(entry.user.id) in keys or invalidation.session_key(sid) in keys
        ]
        for sid in doomed:
            del self._entries[sid]

    async def publish(self, keys: set[str]) -> None:
        if not keys or self._redis is None:
            return
        try:
            await self._redis.publish(invalidation.CHANNEL, invalidation.encode(keys))
        except Exception as exc:  # Redis down: the other processes bypass their caches
            log.warning("principal_cache.publish_failed", error=type(exc).__name__)

    # ------------------------------------------------------------------ listener
    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(invalidation.CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=5.0)
                        if message is None:
                            continue
                        if message["type"] == "subscribe":
                            # Anything committed before now is in the database: start afresh.
                            self.apply({invalidation.EVERYTHING})
                            self.live = self.ttl > 0
                        elif message["type"] == "message":
                            self.apply(invalidation.decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("principal_cache.listener_lost", error=type(exc).__name__)
            finally:
                self.live = False
                self.apply({invalidation.EVERYTHING})
            await asyncio.sleep(1)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.ttl <= 0 or not self.redis_url:
            try:
                yield
            finally:
                self._remove_listener()
            return
        # Its own connection: pub/sub blocks on reads, unlike the shared client's short timeouts.
        self._redis = aioredis.Redis.from_url(
            self.redis_url, socket_connect_timeout=1, health_check_interval=15
        )
        self._task = asyncio.create_task(self._listen(), name="principal-cache-listener")
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._remove_listener()
            await self._redis.aclose()


def publishing_session_class(cache: PrincipalCache) -> type[UnitOfWorkSession]:
    """The API's session (a unit of work, common.db): a commit that invalidates principals
    publishes before it returns, so the answer to a logout leaves after every process has been
    told."""

    class PublishingSession(UnitOfWorkSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sync_session.info[invalidation.ASYNC_PUBLISHER] = True

        async def commit(self) -> None:
            try:
                await super().commit()  # may raise what an after_commit hook reported
            finally:
                await cache.publish(invalidation.take_committed(self.sync_session))

        async def close(self) -> None:
            # A transaction committed through `session.begin()` publishes here.
            await cache.publish(invalidation.take_committed(self.sync_session))
            await super().close()

    return PublishingSession
