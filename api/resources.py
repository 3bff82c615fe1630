"""Process-wide resources the API builds at start-up and closes at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from api.cache import ResponseCache
from api.login_guard import LoginGuard
from api.password_workers import PasswordWorkers
from api.principal_cache import PrincipalCache, publishing_session_class
from api.ratelimit import RateLimiter
from api.single_flight import SharedResult
from common.cache_invalidation import session_info
from common.celery_config import make_celery
from common.db import AsyncDatabase
from common.jobs import CeleryPublisher
from common.settings import Settings

WORKER_PING_SHARE_SECONDS = 1.0


@dataclass
class Resources:
    settings: Settings
    db: AsyncDatabase
    redis: aioredis.Redis
    celery: Any
    publisher: CeleryPublisher
    rate_limiter: RateLimiter
    login_guard: LoginGuard
    cache: ResponseCache
    password_workers: PasswordWorkers
    principal_cache: PrincipalCache
    # Domains add readiness checks here (e.g. storage); /health runs them all.
    extra_health_checks: dict[str, Callable[[], Awaitable[Any]]] = field(default_factory=dict)
    # /health's broadcast ping of the workers, shared by every caller for WORKER_PING_SHARE_SECONDS
    # (api.services.ops): a flood of /health must not become a flood of pings on the broker.
    worker_ping: SharedResult[list[dict[str, Any]]] = field(
        default_factory=lambda: SharedResult(WORKER_PING_SHARE_SECONDS)
    )

    @classmethod
    def create(cls, settings: Settings) -> Resources:
        celery = make_celery(settings, main="mcq-api")
        redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=15
        )
        cache = ResponseCache(
            redis, settings.redis_key_prefix, settings.cache_ttl_seconds, settings.cache_enabled
        )
        principals = PrincipalCache(settings)
        return cls(
            settings=settings,
            # Every commit invalidates the cache entries and cached principals its writes made
            # stale (common.cache_invalidation, common.principal_invalidation).
            db=AsyncDatabase(
                settings,
                info=session_info(cache.bump_after_commit),
                session_class=publishing_session_class(principals),
            ),
            redis=redis,
            celery=celery,
            publisher=CeleryPublisher(celery),
            rate_limiter=RateLimiter(settings),
            login_guard=LoginGuard(settings, redis),
            cache=cache,
            password_workers=PasswordWorkers(settings),
            principal_cache=principals,
        )

    async def close(self) -> None:
        self.password_workers.close()
        await self.db.dispose()
        await self.redis.aclose()
