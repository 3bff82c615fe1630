"""Per-process state of a worker child: its database, built after the fork."""

from __future__ import annotations

from common.cache import SyncBumper
from common.cache_invalidation import session_info
from common.db import SyncDatabase
from common.settings import get_settings

_db: SyncDatabase | None = None


def init_db() -> SyncDatabase:
    global _db
    if _db is not None:
        _db.dispose()
    settings = get_settings()
    # The worker's commits invalidate the cache entries they make stale (a regrade's statistics).
    _db = SyncDatabase(
        settings, info=session_info(SyncBumper(settings.redis_url, settings.redis_key_prefix))
    )
    return _db


def db() -> SyncDatabase:
    # Lazily too, for the solo/threads pools where worker_process_init does not fire.
    return _db or init_db()
