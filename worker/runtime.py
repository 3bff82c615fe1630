"""Per-process state of a worker child: its database, built after the fork."""

from __future__ import annotations

import redis
import structlog

from common.cache import bump_sync
from common.db import SyncDatabase
from common.settings import get_settings

_db: SyncDatabase | None = None


def init_db() -> SyncDatabase:
    global _db
    if _db is not None:
        _db.dispose()
    _db = SyncDatabase()
    return _db


def db() -> SyncDatabase:
    # Lazily too, for the solo/threads pools where worker_process_init does not fire.
    return _db or init_db()


_redis: redis.Redis | None = None


def invalidate(*scopes: str) -> None:
    """Bump cache versions after a task's writes committed (e.g. a regrade's statistics).

    Fails open like the API's cache: a Redis error is logged, and entries expire by their TTL.
    """
    global _redis
    settings = get_settings()
    try:
        if _redis is None:
            _redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        bump_sync(_redis, settings.redis_key_prefix, *scopes)
    except redis.RedisError as exc:
        structlog.get_logger(__name__).warning("cache.invalidate_failed", error=repr(exc))
