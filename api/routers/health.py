from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from api.deps import ResourcesDep
from api.schemas.health import HealthReport, Liveness
from api.services import ops

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Readiness",
    description="Checks the database, Redis, the broker, storage, that a worker answers and the "
    "virus scanner (`disabled` when scanning is off), each with a short timeout; the worker "
    "ping is shared by every caller for a second. 200 when all are up, 503 otherwise. Anyone sees "
    "the overall status and each component's status; latencies, errors, worker host names and "
    "versions need `Authorization: Bearer` with the metrics token or an admin's access token.",
    response_class=JSONResponse,
    responses={
        200: {"model": HealthReport, "description": "Every component is up."},
        503: {"model": HealthReport, "description": "A component is down or slow."},
    },
)
async def health(
    resources: ResourcesDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> JSONResponse:
    details = await ops.may_see_health_details(resources, authorization)
    report = await ops.health_report(resources, details=details)
    return JSONResponse(
        report.body,
        status_code=200 if report.ok else 503,
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
