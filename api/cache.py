"""Response caching on Redis for frequent reads, with ETags, stampede protection and fail-open.

A cached body is stored as bytes under a key that embeds the versions of everything it depends
on (common.cache). When a popular entry is missing, one request recomputes it under a short
lock while the others wait briefly for its result, instead of all hitting the database at once.
Redis errors never fail a request: the body is computed directly (logged and counted).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
import structlog
from fastapi import Request, Response
from sqlalchemy.util import await_

from common.cache import VERSION_TTL_SECONDS, entry_key, version_key
from common.metrics import CACHE_EVENTS, FAIL_OPEN

log = structlog.get_logger(__name__)
LOCK_MS = 3000
WAIT_STEP = 0.02
WAIT_STEPS = 100  # ~2 s, then compute anyway


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class ResponseCache:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl: int, enabled: bool) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl
        self.enabled = enabled

    def _fail_open(self, exc: Exception) -> None:
        FAIL_OPEN.labels("cache").inc()
        log.warning("cache.fail_open", error=type(exc).__name__)

    async def versions(self, *scopes: str) -> dict[str, int] | None:
        try:
            values = await self.redis.mget([version_key(self.prefix, s) for s in scopes])
        except Exception as exc:
            self._fail_open(exc)
            return None
        return {s: int(v or 0) for s, v in zip(scopes, values, strict=True)}

    async def bump(self, *scopes: str) -> None:
        if not scopes:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.incr(version_key(self.prefix, scope))
                    pipe.expire(version_key(self.prefix, scope), VERSION_TTL_SECONDS)
                await pipe.execute()
        except Exception as exc:
            # Without Redis nothing is cached either; entries written before the outage carry
            # old versions and expire within the TTL.
            self._fail_open(exc)

    def bump_after_commit(self, scopes: frozenset[str]) -> None:
        """A common.cache_invalidation.Bumper for the API's async sessions. The hook runs inside
        AsyncSession.commit's greenlet, so the async bump is awaited from there: the entry is
        stale-free before the request answers, without blocking the event loop."""
        try:
            await_(self.bump(*sorted(scopes)))
        except Exception as exc:  # never fail a commit that already happened
            self._fail_open(exc)

    async def get_or_compute(
        self,
        name: str,
        scopes: tuple[str, ...],
        parts: tuple[object, ...],
        compute: Callable[[], Awaitable[bytes]],
    ) -> bytes:
        if not self.enabled:
            return await compute()
        versions = await self.versions(*scopes)
        if versions is None:
            return await compute()
        key = entry_key(self.prefix, name, versions, *parts)
        try:
            cached = await self.redis.get(key)
            if cached is not None:
                CACHE_EVENTS.labels(name, "hit").inc()
                return bytes(cached)
            CACHE_EVENTS.labels(name, "miss").inc()
            if not await self.redis.set(f"{key}:lock", b"1", nx=True, px=LOCK_MS):
                for _ in range(WAIT_STEPS):
                    await asyncio.sleep(WAIT_STEP)
                    cached = await self.redis.get(key)
                    if cached is not None:
                        return bytes(cached)
            body = await compute()
            await self.redis.set(key, body, ex=self.ttl)
            await self.redis.delete(f"{key}:lock")
            return body
        except (aioredis.RedisError, OSError) as exc:
            self._fail_open(exc)
            return await compute()


def respond(request: Request, body: bytes, *, private: bool = True) -> Response:
    """200 with an ETag, or 304 when the client already holds this version."""
    etag = etag_of(body)
    headers = {
        "ETag": etag,
        # Per-user content: browsers may keep it, shared proxies must not.
        "Cache-Control": "private, no-cache" if private else "public, no-cache",
        "Vary": "Authorization",
    }
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
