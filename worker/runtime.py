"""Per-process state of a worker child: its database, built after the fork."""

from __future__ import annotations

from common.db import SyncDatabase

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
