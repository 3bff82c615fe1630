from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import ResourcesDep
from api.resources import Resources
from api.schemas.health import HealthReport, Liveness
from common.files import get_storage

router = APIRouter(tags=["health"])


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
    async def database() -> None:
        async with resources.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await resources.redis.ping()  # type: ignore[misc]  # redis-py types ping as sync|async

    async def broker() -> None:
        def connect() -> None:
            with resources.celery.connection_for_write() as conn:
                conn.ensure_connection(
                    max_retries=1, timeout=resources.settings.health_check_timeout
                )

        await asyncio.to_thread(connect)

    async def workers() -> dict[str, Any]:
        timeout = resources.settings.health_check_timeout * 0.8
        # limit=1: return at the first answer instead of waiting out the timeout for more.
        replies = await asyncio.to_thread(resources.celery.control.ping, timeout=timeout, limit=1)
        if not replies:
            raise RuntimeError("no worker answered")
        return {"answered": next(iter(replies[0]))}

    async def storage() -> dict[str, Any]:
        # A lookup of a key that never exists: proves the root (or bucket) answers.
        store = get_storage(resources.settings)
        await asyncio.to_thread(store.exists, "health-probe")
        return {"backend": resources.settings.storage_backend}

    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "database": database,
        "redis": redis,
        "broker": broker,
        "storage": storage,
        "workers": workers,
    }
    checks.update(resources.extra_health_checks)
    return checks


@router.get(
    "/health",
    summary="Readiness",
    description="Checks the database, Redis, the broker, storage and that a worker answers, "
    "each with a short timeout. 200 when all are up, 503 with the failing component otherwise.",
    response_class=JSONResponse,
    responses={
        200: {"model": HealthReport, "description": "Every component is up."},
        503: {"model": HealthReport, "description": "A component is down or slow."},
    },
)
async def health(resources: ResourcesDep) -> JSONResponse:
    checks = _checks(resources)
    timeout = resources.settings.health_check_timeout
    results = await asyncio.gather(*(_timed(fn(), timeout) for fn in checks.values()))
    components = dict(zip(checks, results, strict=True))
    ok = all(c["status"] == "ok" for c in components.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "components": components},
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/health/live",
    summary="Liveness",
    description="Answers without touching any dependency.",
    response_model=Liveness,
)
async def live() -> Liveness:
    return Liveness(status="ok")
