"""Cache keys and version bumps shared by the API and the worker.

Entries are versioned instead of deleted: a write bumps the version of what it changed (a test,
or the generation of all test lists), and readers build keys with the current versions, so a
stale entry is never found again and simply expires. Which write bumps which scope is decided in
common.cache_invalidation, by session hooks in the API and the worker alike; the scopes that
follow grades are named by common.grading.cache_scopes.
"""

from __future__ import annotations

import redis
import structlog

VERSION_TTL_SECONDS = 7 * 24 * 3600
LISTS = "tests:lists"


def test_scope(test_id: int) -> str:
    return f"test:{test_id}"


def version_key(prefix: str, scope: str) -> str:
    return f"{prefix}cache:v:{scope}"


def entry_key(prefix: str, name: str, versions: dict[str, int], *parts: object) -> str:
    stamp = ",".join(f"{scope}={versions[scope]}" for scope in sorted(versions))
    return f"{prefix}cache:e:{name}:{stamp}:" + ":".join(str(p) for p in parts)


def bump_sync(client: redis.Redis, prefix: str, *scopes: str) -> None:
    """Invalidate from sync code (the worker). Errors propagate: the caller decides."""
    pipe = client.pipeline()
    for scope in scopes:
        pipe.incr(version_key(prefix, scope))
        pipe.expire(version_key(prefix, scope), VERSION_TTL_SECONDS)
    pipe.execute()


class SyncBumper:
    """Bumps versions from sync sessions (the worker) after their commit: a
    common.cache_invalidation.Bumper. Fails open: a Redis error is logged, and the stale
    entries expire within their TTL."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._client: redis.Redis | None = None

    def __call__(self, scopes: frozenset[str]) -> None:
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            bump_sync(self._client, self.prefix, *sorted(scopes))
        except redis.RedisError as exc:
            structlog.get_logger(__name__).warning("cache.invalidate_failed", error=repr(exc))
