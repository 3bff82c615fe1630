from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import DbSession, PageDep, Principal, ResourcesDep, scoped
from api.errors import error_responses
from api.responses import ACCEPTED_DOC, accepted
from api.schemas.tasks import EchoRequest, JobOut, JobStatus
from api.services import tasks as service

router = APIRouter(prefix="/tasks", tags=["tasks"])
ERRORS = error_responses(401, 403, 404)


@router.get(
    "",
    summary="List my tasks",
    description="The caller's background jobs, newest first, filterable by kind and status.",
    response_model=list[JobOut],
    responses=ERRORS,
)
async def list_tasks(
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Annotated[Principal, scoped("me")],
    # A task kind is a dotted name; anything else (a NUL byte reaching PostgreSQL) is a 422.
    kind: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")] = None,
    status: Annotated[JobStatus | None, Query()] = None,
) -> list[JobOut]:
    jobs, total = await service.list_jobs(
        session=session, principal=principal, page=page, kind=kind, status=status
    )
    response.headers["X-Total-Count"] = str(total)
    return [JobOut.of(j) for j in jobs]


@router.get(
    "/{task_id}",
    summary="Task status",
    description="Status, progress, result or error of a background job. While it runs the "
    "response carries `Retry-After`. Other users' tasks answer 404 (admins see all).",
    response_model=JobOut,
    responses=ERRORS,
)
async def get_task(
    task_id: uuid.UUID,
    response: Response,
    session: DbSession,
    principal: Annotated[Principal, scoped("me")],
) -> JobOut:
    job = await service.get_job(session=session, principal=principal, job_id=task_id)
    if (wait := service.retry_after(job)) is not None:
        response.headers["Retry-After"] = wait
    return JobOut.of(job)


@router.post(
    "/{task_id}/cancel",
    summary="Cancel a task",
    description="A queued task is canceled at once (`status` is `canceled`); a running one "
    "stops at its next checkpoint and ends `canceled`: poll it. 409 when it already ended.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **error_responses(409)},
)
async def cancel_task(
    task_id: uuid.UUID,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("me")],
) -> JSONResponse:
    job = await service.cancel_job(
        session=session, resources=resources, principal=principal, job_id=task_id
    )
    return accepted(job)


@router.post(
    "/diagnostics/echo",
    summary="Diagnostic echo job",
    description="Admins only. The worker waits `delay_seconds` (cancellable) and succeeds with "
    "the payload as its result: a probe of the whole queue path.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **error_responses(503)},
)
async def echo(
    body: EchoRequest,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("admin")],
) -> JSONResponse:
    job = await service.start_echo(
        session=session,
        resources=resources,
        principal=principal,
        payload=body.payload,
        delay_seconds=body.delay_seconds,
    )
    return accepted(job)
