from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import ResourcesDep

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 2.0


async def _timed(check: Any) -> dict[str, Any]:
    start = time.perf_counter()
    status: dict[str, Any]
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT)
        status = {"status": "ok"}
    except TimeoutError:
        status = {"status": "down", "error": "timeout"}
    except Exception as exc:
        status = {"status": "down", "error": type(exc).__name__}
    status["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return status


@router.get(
    "/health",
    summary="Readiness",
    description="Checks the database and Redis; 200 when all are up, 503 otherwise.",
)
async def health(resources: ResourcesDep) -> JSONResponse:
    async def db() -> None:
        async with resources.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await resources.redis.ping()  # type: ignore[misc]  # redis-py types ping as sync|async

    components = dict(
        zip(["database", "redis"], await asyncio.gather(_timed(db()), _timed(redis())), strict=True)
    )
    ok = all(c["status"] == "ok" for c in components.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "components": components},
        status_code=200 if ok else 503,
    )


@router.get(
    "/health/live",
    summary="Liveness",
    description="Answers without touching any dependency.",
)
async def live() -> dict[str, str]:
    return {"status": "ok"}
