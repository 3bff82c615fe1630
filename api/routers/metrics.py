from __future__ import annotations

import os

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from api.deps import ResourcesDep
from api.services import ops
from common.celery_config import BIOMETRICS_QUEUE, DEFAULT_QUEUE
from common.errors import NotFound
from common.metrics import DB_POOL, FAIL_OPEN, JOBS, QUEUE_DEPTH
from common.models import Job

router = APIRouter(tags=["health"])


async def _refresh_gauges(resources: ResourcesDep) -> None:
    pool = resources.db.engine.pool
    DB_POOL.labels("checked_out").set(pool.checkedout())  # type: ignore[attr-defined]
    DB_POOL.labels("idle").set(pool.checkedin())  # type: ignore[attr-defined]
    async with resources.db.session() as session:
        rows = await session.execute(
            select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
        )
        JOBS.clear()
        for kind, status, count in rows:
            JOBS.labels(kind, status).set(count)
    prefix = resources.settings.redis_key_prefix
    try:
        for queue in (DEFAULT_QUEUE, BIOMETRICS_QUEUE):
            QUEUE_DEPTH.labels(queue).set(await resources.redis.llen(f"{prefix}{queue}"))  # type: ignore[misc]
    except Exception:
        FAIL_OPEN.labels("metrics_queue_depth").inc()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Request counts and latency by route template, in-flight requests, database "
    "pool, cache and rate-limit events, jobs by kind and status, queue depth. When "
    "METRICS_TOKEN is set (always in production), send it as a bearer token; without it the "
    "answer is 404.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(
    resources: ResourcesDep, authorization: str | None = Header(default=None)
) -> Response:
    settings = resources.settings
    if not (ops.metrics_are_open(settings) or ops.metrics_token_matches(settings, authorization)):
        raise NotFound("not found")
    await _refresh_gauges(resources)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
