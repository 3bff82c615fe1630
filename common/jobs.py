"""Enqueueing background work: insert the job, commit, then publish by task name.

Publishing after the commit means the worker always finds its job row; a failed publish marks
the job failed at once, so no job is ever left `queued` with no message behind it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.celery_config import TASK_QUEUES
from common.models.jobs import FINISHED_STATUSES, Job

log = structlog.get_logger(__name__)


class BrokerUnavailable(Exception):
    """The message broker could not take the task; the job was marked failed."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__("the task queue is unavailable")
        self.job_id = job_id


class Publisher(Protocol):
    def publish(self, task_name: str, job_id: uuid.UUID) -> None: ...


class CeleryPublisher:
    """Publishes by task name, so the API never imports worker code."""

    def __init__(self, celery_app: Any) -> None:
        self.app = celery_app

    def publish(self, task_name: str, job_id: uuid.UUID) -> None:
        self.app.send_task(
            task_name,
            args=[str(job_id)],
            task_id=str(job_id),
            queue=TASK_QUEUES[task_name],
            # Results live in the jobs table; skipping the result backend also keeps a Redis
            # outage from stalling the publish in its reconnect loop.
            ignore_result=True,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
        )


async def enqueue(
    session: AsyncSession,
    publisher: Publisher,
    *,
    kind: str,
    owner_id: int | None,
    params: dict[str, Any] | None = None,
    subject: str | None = None,
    total: int | None = None,
) -> Job:
    """Add a job to the caller's transaction, commit it, then publish the task.

    The caller's own writes in `session` commit together with the job (one transaction per use
    case). Raises BrokerUnavailable after marking the job failed when publishing fails.
    """
    if kind not in TASK_QUEUES:
        raise ValueError(f"unknown task kind {kind!r}")
    job = Job(
        id=uuid.uuid4(),
        kind=kind,
        owner_id=owner_id,
        status="queued",
        params=params or {},
        subject=subject,
        progress_total=total,
    )
    session.add(job)
    await session.commit()
    try:
        await asyncio.to_thread(publisher.publish, kind, job.id)
    except Exception as exc:
        log.warning("enqueue.broker_unavailable", job_id=str(job.id), kind=kind, error=repr(exc))
        await session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                status="failed",
                error_code="broker_unavailable",
                error_message="The task queue is unavailable; try again shortly.",
                finished_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
        await session.commit()
        raise BrokerUnavailable(job.id) from exc
    return job


# --------------------------------------------------------------------------- per-test locks


def test_subject(test_id: int) -> str:
    """The subject of every job about a test: grading and face jobs alike. A subject says what
    a job concerns; which jobs exclude each other is a `TestJobLock`'s business, not the
    subject's."""
    return f"test:{test_id}"


@dataclass(frozen=True)
class TestJobLock:
    """At most one unfinished job of `kinds` per test; jobs of other kinds on the same test
    neither take it nor wait for it.

    Callers check it while holding the test's row lock (SELECT ... FOR UPDATE), so two requests
    cannot both find it free.
    """

    name: str
    kinds: frozenset[str]

    def held(self, test_id: int) -> ColumnElement[bool]:
        return and_(
            Job.subject == test_subject(test_id),
            Job.kind.in_(sorted(self.kinds)),
            Job.status.not_in(FINISHED_STATUSES),
        )

    async def holder(self, session: AsyncSession, test_id: int) -> Job | None:
        """The unfinished job holding the lock for this test, if any."""
        return (await session.scalars(select(Job).where(self.held(test_id)).limit(1))).first()
