"""The lifecycle of a job inside a task: start, progress, cancellation, one final transaction.

Every task body runs through `run_job`, which makes tasks idempotent (a redelivered task whose
job already ended returns at once) and commits a task's domain writes together with its job's
final status, so a crash can never leave writes without a finished job, or the reverse. A run
holds its job's lease (common.job_leases) from its start, renewed by a heartbeat, until it ends;
a second delivery of a job whose run still holds a live lease does nothing.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from common import job_leases
from common.errors import DomainError
from common.models import Job
from common.models.jobs import FINISHED_STATUSES
from common.settings import get_settings
from worker.leases import Heartbeat
from worker.runtime import db

log = structlog.get_logger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, ConnectionError)
MAX_RETRIES = 5


class JobFailed(DomainError):
    """Bad input or an impossible request: the job fails with this code, without retries.
    Any other DomainError a task lets escape fails its job the same way (`run_job`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class JobCanceled(Exception):
    pass


class _AlreadyFinished(Exception):
    """The job is no longer this run's to finish (finished, deleted or queued again)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class JobContext:
    job_id: uuid.UUID
    kind: str
    owner_id: int | None
    params: dict[str, Any]
    attempt: int
    _result: dict[str, Any] | None = field(default=None, init=False)
    _finished: bool = field(default=False, init=False)

    def progress(self, done: int, total: int | None = None) -> None:
        """Record progress (its own short transaction) and honour a cancel request."""
        with db().transaction() as session:
            values: dict[str, Any] = {"progress_done": done, "updated_at": _now()}
            if total is not None:
                values["progress_total"] = total
            running = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.status.in_(("started", "progress")))
                .values(status="progress", **values)
                .returning(Job.cancel_requested)
            ).first()
        if running is None:
            # The job is no longer this run's: deleted (its owner or test went), queued again
            # by a reaper, or ended elsewhere. Going on would only hold a pool slot.
            raise _AlreadyFinished()
        if running.cancel_requested:
            raise JobCanceled()

    def check_canceled(self) -> None:
        with db().transaction() as session:
            if session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                raise JobCanceled()

    @contextmanager
    def finish(self) -> Iterator[Session]:
        """The final transaction: domain writes made in it commit with `succeeded`.

        The job row is locked first; if another delivery already finished it, nothing is written.
        """
        with db().transaction() as session:
            status = session.scalar(
                select(Job.status).where(Job.id == self.job_id).with_for_update()
            )
            if status in FINISHED_STATUSES:
                raise _AlreadyFinished()
            yield session
            session.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(
                    status="succeeded",
                    result=self._result,
                    finished_at=_now(),
                    updated_at=_now(),
                    error_code=None,
                    error_message=None,
                    **job_leases.released(),
                )
            )
        self._finished = True

    def set_result(self, result: dict[str, Any]) -> None:
        self._result = result


def _start(job_id: uuid.UUID) -> JobContext | None:
    """Mark the job started and take its lease, or return None when there is nothing to do."""
    settings = get_settings()
    with db().transaction() as session:
        row = session.execute(
            select(Job, job_leases.lease_is_live()).where(Job.id == job_id).with_for_update()
        ).one_or_none()
        if row is None:
            log.warning("job.unknown", job_id=str(job_id))
            return None
        job, live = row
        if job.status in FINISHED_STATUSES:
            log.info("job.already_finished", job_id=str(job_id), status=job.status)
            return None
        if job.status in ("started", "progress"):
            # Another delivery of a running job: a message restored by the visibility timeout,
            # or requeued when a pool child died. A live run keeps it; a lost one hands it over.
            if live and not job_leases.holder_is_dead(job.lease_holder):
                log.info("job.duplicate_delivery", holder=job.lease_holder)
                return None
            if not job_leases.record_lost_run(job, settings.job_max_attempts):
                log.warning("job.worker_lost", status=job.status, lost_runs=job.lost_runs)
                return None
            log.warning("job.worker_lost", status="queued", lost_runs=job.lost_runs)
        if job.cancel_requested:
            job.status, job.finished_at, job.updated_at = "canceled", _now(), _now()
            return None
        job.status = "started"
        job.attempts += 1
        job.started_at = job.started_at or _now()
        job.updated_at = _now()
        job_leases.take_lease(job, settings.job_lease_seconds, settings.redis_key_prefix)
        return JobContext(job.id, job.kind, job.owner_id, dict(job.params), job.attempts)


def _end(
    job_id: uuid.UUID, status: str, code: str | None = None, message: str | None = None
) -> None:
    with db().transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.not_in(FINISHED_STATUSES))
            .values(
                status=status,
                error_code=code,
                error_message=message[:500] if message else None,
                finished_at=_now(),
                updated_at=_now(),
                **job_leases.released(),
            )
        )


def _mark_retrying(job_id: uuid.UUID, message: str, countdown: float) -> None:
    # The retry waits in this worker's memory: the lease covers the wait, so a reaper brings
    # the job back if the worker is lost meanwhile.
    lease = countdown + get_settings().job_lease_seconds
    with db().transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.not_in(FINISHED_STATUSES))
            .values(
                status="retrying",
                error_message=message[:500],
                updated_at=_now(),
                lease_expires_at=job_leases.lease_until(lease),
            )
        )


def backoff(retries: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**retries))


def run_job(task: Task, job_id_text: str, body: Callable[[JobContext], None]) -> None:
    """Run `body` for the job; `body` must write its results inside `ctx.finish()`."""
    job_id = uuid.UUID(job_id_text)
    structlog.contextvars.bind_contextvars(job_id=job_id_text, task=task.name)
    try:
        try:
            ctx = _start(job_id)
        except TRANSIENT_ERRORS as exc:
            raise task.retry(
                exc=exc, countdown=backoff(task.request.retries), max_retries=MAX_RETRIES
            ) from exc
        if ctx is None:
            return
        log.info("job.started", attempt=ctx.attempt)
        try:
            with Heartbeat(job_id):
                body(ctx)
            if not ctx._finished:
                with ctx.finish():
                    pass
            log.info("job.succeeded")
        except _AlreadyFinished:
            log.info("job.finished_elsewhere")
        except JobCanceled:
            _end(job_id, "canceled")
            log.info("job.canceled")
        except DomainError as exc:  # the worker's mapping of domain errors: a failed job
            _end(job_id, "failed", exc.code, exc.message)
            log.info("job.failed", code=exc.code)
        except SoftTimeLimitExceeded:
            _end(job_id, "failed", "timeout", "The task ran out of time.")
            log.warning("job.timeout")
        except TRANSIENT_ERRORS as exc:
            # Database or Redis unavailable: retry with backoff; bad input never lands here.
            if task.request.retries >= MAX_RETRIES:
                _end(job_id, "failed", "unavailable", "A dependency stayed unavailable.")
                raise
            # If the database itself is down, the status catches up on the next try.
            countdown = backoff(task.request.retries)
            with contextlib.suppress(*TRANSIENT_ERRORS):
                _mark_retrying(job_id, "A dependency is unavailable; retrying.", countdown)
            log.warning("job.retrying", error=type(exc).__name__)
            raise task.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES) from exc
        except Exception:
            log.exception("job.crashed")
            _end(job_id, "failed", "internal_error", "The task failed unexpectedly.")
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "task")
