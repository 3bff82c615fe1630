"""The lifecycle of a job inside a task: start, progress, cancellation, one final transaction.

Every task body runs through `run_job`, which makes tasks idempotent (a redelivered task whose
job already ended returns at once) and commits a task's domain writes together with its job's
final status, so a crash can never leave writes without a finished job, or the reverse.
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

from common.models import Job
from common.models.jobs import FINISHED_STATUSES
from worker.runtime import db

log = structlog.get_logger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, ConnectionError)
MAX_RETRIES = 5


class JobFailed(Exception):
    """Bad input or an impossible request: the job fails with this code, without retries."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JobCanceled(Exception):
    pass


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
            canceled = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.status.in_(("started", "progress")))
                .values(status="progress", **values)
                .returning(Job.cancel_requested)
            ).scalar_one_or_none()
        if canceled:
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
                )
            )
        self._finished = True

    def set_result(self, result: dict[str, Any]) -> None:
        self._result = result


class _AlreadyFinished(Exception):
    pass


def _start(job_id: uuid.UUID) -> JobContext | None:
    """Mark the job started, or return None when there is nothing to do."""
    with db().transaction() as session:
        job = session.execute(
            select(Job).where(Job.id == job_id).with_for_update()
        ).scalar_one_or_none()
        if job is None:
            log.warning("job.unknown", job_id=str(job_id))
            return None
        if job.status in FINISHED_STATUSES:
            log.info("job.already_finished", job_id=str(job_id), status=job.status)
            return None
        if job.cancel_requested:
            job.status, job.finished_at, job.updated_at = "canceled", _now(), _now()
            return None
        job.status = "started"
        job.attempts += 1
        job.started_at = job.started_at or _now()
        job.updated_at = _now()
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
            )
        )


def _mark_retrying(job_id: uuid.UUID, message: str) -> None:
    with db().transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.not_in(FINISHED_STATUSES))
            .values(status="retrying", error_message=message[:500], updated_at=_now())
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
        except JobFailed as exc:
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
            with contextlib.suppress(*TRANSIENT_ERRORS):
                _mark_retrying(job_id, "A dependency is unavailable; retrying.")
            log.warning("job.retrying", error=type(exc).__name__)
            raise task.retry(
                exc=exc, countdown=backoff(task.request.retries), max_retries=MAX_RETRIES
            ) from exc
        except Exception:
            log.exception("job.crashed")
            _end(job_id, "failed", "internal_error", "The task failed unexpectedly.")
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "task")
