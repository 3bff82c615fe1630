"""Enqueueing background work: the job joins the caller's transaction; its task is published
by name after that transaction commits.

Publishing after the commit means the worker always finds its job row, and a rolled-back use
case publishes nothing; a failed publish marks the job failed at once, so no job is ever left
`queued` with no message behind it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import ColumnElement, and_, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util import await_

from common.celery_config import TASK_QUEUES
from common.db import report_after_commit
from common.errors import Unavailable
from common.models.jobs import FINISHED_STATUSES, Job

log = structlog.get_logger(__name__)

TO_PUBLISH = "jobs_to_publish"  # session.info: (publisher, kind, job id) awaiting the commit


class BrokerUnavailable(Unavailable):
    """The message broker could not take the task; the job was marked failed."""

    def __init__(self, job_id: uuid.UUID) -> None:
        super().__init__(
            "The task queue is unavailable; the job was not started. Try again shortly.",
            code="queue_unavailable",
            details={"task_id": str(job_id)},
            retry_after=5,
        )
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
    """Add a job to the caller's transaction; the task is published once the caller commits.

    Nothing is committed here: the job commits (or rolls back) with the caller's own writes in
    `session`, one transaction per use case. After the commit, `_publish_after_commit` sends
    the task; if the broker cannot take it, the job is marked failed and the caller's
    `commit()` raises BrokerUnavailable (common.db.UnitOfWorkSession).
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
    session.info.setdefault(TO_PUBLISH, []).append((publisher, kind, job.id))
    return job


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    """Publish the jobs the transaction committed. Runs inside AsyncSession.commit's greenlet,
    so the blocking publish goes to a thread and is awaited from there. Never raises (the
    session would be left half-closed): a failure is reported to the commit instead."""
    pending = session.info.pop(TO_PUBLISH, None)
    for publisher, kind, job_id in pending or ():
        try:
            await_(asyncio.to_thread(publisher.publish, kind, job_id))
        except Exception as exc:
            log.warning(
                "enqueue.broker_unavailable", job_id=str(job_id), kind=kind, error=repr(exc)
            )
            _mark_unpublished(session, job_id)
            report_after_commit(session, BrokerUnavailable(job_id))


def _mark_unpublished(session: Session, job_id: uuid.UUID) -> None:
    """No job stays `queued` with no message behind it. On a connection of its own: the
    session's transaction is over."""
    now = datetime.now(UTC)
    try:
        with session.get_bind().engine.connect() as conn:
            conn.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status="failed",
                    error_code="broker_unavailable",
                    error_message="The task queue is unavailable; try again shortly.",
                    finished_at=now,
                    updated_at=now,
                )
            )
            conn.commit()
    except Exception as exc:  # the database went too: the job reaper fails it later
        log.warning("enqueue.mark_failed_failed", job_id=str(job_id), error=repr(exc)[:200])


@event.listens_for(Session, "after_rollback")
def _drop_unpublished(session: Session) -> None:
    session.info.pop(TO_PUBLISH, None)


# --------------------------------------------------------------------------- per-test locks


def test_subject(test_id: int) -> str:
    """The subject of every job about a test: grading and face jobs alike. A subject says what
    a job concerns; which jobs exclude each other is a `TestJobLock`'s business, not the
    subject's."""
    return f"test:{test_id}"


@dataclass(frozen=True)
class ExamJobLock:
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
