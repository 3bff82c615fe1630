"""Operations endpoints: who may read what, and the readiness checks behind /health.

- `/metrics` needs `Authorization: Bearer <METRICS_TOKEN>` whenever the token is set (and
  production refuses to start without it: Settings.production_problems).
- `/health` tells anyone the overall status and each component's status; latencies, errors,
  worker host names and versions only to the metrics token or an admin's access token
  (`may_see_health_details`).
- The broadcast ping of the workers runs at most once per WORKER_PING_SHARE_SECONDS
  (api.resources) per process, whoever asks: concurrent callers await the same ping
  (`SharedResult`), so a flood of /health is one broadcast a second on the broker, not one per
  request. The other checks are cheap, direct and always fresh.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from sqlalchemy import text

from api.deps import authenticate
from api.resources import Resources
from common.files import clamd_client, get_storage
from common.settings import Settings

# A component in one of these states does not make the service unready.
FINE_STATUSES = frozenset({"ok", "disabled"})


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def metrics_token_matches(settings: Settings, authorization: str | None) -> bool:
    """True when the request carries the configured METRICS_TOKEN (constant-time compare)."""
    token, given = settings.metrics_token, bearer(authorization)
    if token is None or not settings.has_metrics_token or given is None:
        return False
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def metrics_are_open(settings: Settings) -> bool:
    """Without a token /metrics is open: only outside production, where the API refuses to
    start without one."""
    return not settings.has_metrics_token


async def may_see_health_details(resources: Resources, authorization: str | None) -> bool:
    """The metrics token, or a live admin session. Anything else (no token, a bad one, the
    database down) gets the public view, never an error: probes must always get an answer."""
    if metrics_token_matches(resources.settings, authorization):
        return True
    token = bearer(authorization)
    if token is None:
        return False
    try:
        async with resources.db.session() as session:
            principal = await asyncio.wait_for(
                authenticate(session, resources, token),
                resources.settings.health_check_timeout,
            )
    except Exception:  # invalid token, revoked session, database down or slow
        return False
    return principal.is_admin


async def _timed(check: Awaitable[Any], seconds: float) -> dict[str, Any]:
    start = time.perf_counter()
    status: dict[str, Any]
    try:
        detail = await asyncio.wait_for(check, seconds)
        status = {"status": "ok"}
        if isinstance(detail, dict):
            status.update(detail)
    except TimeoutError:
        status = {"status": "down", "error": "timeout"}
    except Exception as exc:
        status = {"status": "down", "error": type(exc).__name__}
    status["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return status


def _checks(resources: Resources) -> dict[str, Callable[[], Awaitable[Any]]]:
    settings = resources.settings

    async def database() -> None:
        async with resources.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await resources.redis.ping()  # type: ignore[misc]  # redis-py types ping as sync|async

    async def broker() -> None:
        def connect() -> None:
            with resources.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=settings.health_check_timeout)

        await asyncio.to_thread(connect)

    async def workers() -> dict[str, Any]:
        timeout = settings.health_check_timeout * 0.8

        async def ping() -> list[dict[str, Any]]:
            # limit=1: return at the first answer instead of waiting out the timeout for more.
            control = resources.celery.control
            return await asyncio.to_thread(control.ping, timeout=timeout, limit=1)

        replies = await resources.worker_ping.get(ping)
        if not replies:
            raise RuntimeError("no worker answered")
        return {"answered": next(iter(replies[0]))}

    async def storage() -> dict[str, Any]:
        # A lookup of a key that never exists: proves the root (or bucket) answers.
        await asyncio.to_thread(get_storage(settings).exists, "health-probe")
        return {"backend": settings.storage_backend}

    async def scanner() -> dict[str, Any]:
        client = clamd_client(settings)
        assert client is not None  # only registered when a scanner is configured
        return {"version": await asyncio.to_thread(client.version)}

    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "database": database,
        "redis": redis,
        "broker": broker,
        "storage": storage,
        "workers": workers,
    }
    if settings.virus_scanner == "clamd":
        checks["scanner"] = scanner
    checks.update(resources.extra_health_checks)
    return checks


async def run_health_checks(resources: Resources) -> dict[str, dict[str, Any]]:
    """Every component's status with its details, each check bounded by HEALTH_CHECK_TIMEOUT."""
    checks = _checks(resources)
    timeout = resources.settings.health_check_timeout
    results = await asyncio.gather(*(_timed(fn(), timeout) for fn in checks.values()))
    components = dict(zip(checks, results, strict=True))
    if "scanner" not in components:  # skipped on purpose (VIRUS_SCAN=off) or not configured
        components["scanner"] = {"status": "disabled", "virus_scan": "skipped"}
    return components


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    body: dict[str, Any]


async def health_report(resources: Resources, *, details: bool) -> HealthReport:
    components = await run_health_checks(resources)
    ok = all(c["status"] in FINE_STATUSES for c in components.values())
    body: dict[str, Any] = {"status": "ok" if ok else "degraded"}
    if details:
        body["components"] = components
        body["version"] = _version()
    else:
        body["components"] = {name: {"status": c["status"]} for name, c in components.items()}
    return HealthReport(ok, body)


def _version() -> str:
    try:
        return metadata.version("mcq-system")
    except metadata.PackageNotFoundError:
        return "unknown"
