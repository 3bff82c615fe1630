"""Job status, listing and cancellation; the diagnostic echo job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Page, Principal
from api.resources import Resources
from common.errors import Conflict, NotFound
from common.jobs import enqueue
from common.models import Job
from common.models.jobs import FINISHED_STATUSES

log = structlog.get_logger(__name__)


async def get_job(
    *, session: AsyncSession, principal: Principal, job_id: uuid.UUID, for_update: bool = False
) -> Job:
    query = select(Job).where(Job.id == job_id)
    if for_update:
        query = query.with_for_update()
    job = (await session.execute(query)).scalar_one_or_none()
    # Someone else's job is indistinguishable from a missing one.
    if job is None or not (principal.is_admin or job.owner_id == principal.id):
        raise NotFound("task not found")
    return job


async def list_jobs(
    *,
    session: AsyncSession,
    principal: Principal,
    page: Page,
    kind: str | None,
    status: str | None,
) -> tuple[Sequence[Job], int]:
    query = select(Job).where(Job.owner_id == principal.id)
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(Job.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Job.created_at.desc(), Job.id).limit(page.limit).offset(page.offset)
    )
    return rows.all(), total or 0


async def cancel_job(
    *, session: AsyncSession, resources: Resources, principal: Principal, job_id: uuid.UUID
) -> Job:
    job = await get_job(session=session, principal=principal, job_id=job_id, for_update=True)
    if job.status in FINISHED_STATUSES:
        raise Conflict(f"the task already ended ({job.status})", code="task_finished")
    now = datetime.now(UTC)
    if job.status == "queued":
        # Not picked up yet: cancel at once; the worker skips it when the message arrives.
        job.status = "canceled"
        job.finished_at = now
    job.cancel_requested = True
    job.updated_at = now
    await session.commit()
    try:
        await asyncio.to_thread(resources.celery.control.revoke, str(job.id))
    except Exception as exc:  # the job row already says canceled; revoke only saves work
        log.warning("cancel.revoke_failed", job_id=str(job.id), error=repr(exc))
    return job


async def start_echo(
    *,
    session: AsyncSession,
    resources: Resources,
    principal: Principal,
    payload: object,
    delay_seconds: float,
) -> Job:
    job = await enqueue(
        session,
        resources.publisher,
        kind="diagnostics.echo",
        owner_id=principal.id,
        params={"payload": payload, "delay_seconds": delay_seconds},
    )
    await session.commit()
    return job


# How soon a client polling an unfinished job should ask again (seconds, the Retry-After value).
# Most jobs take a few hundred milliseconds to a few seconds; this is no setting to tune.
POLL_AGAIN_SECONDS = 1


def retry_after(job: Job) -> str | None:
    return None if job.status in FINISHED_STATUSES else str(POLL_AGAIN_SECONDS)
