"""The worker's side of job leases (common.job_leases): the heartbeat of a running job, and
the reaper thread of the worker's main process.

The heartbeat is a thread in the process that runs the job, so the lease lives exactly as long
as that process: a killed pool child or a killed worker stops renewing it. The reaper is a
thread in the main process (started when the worker is ready, after the pool forked), with its
own engine that keeps no connection between passes, so a child forked later inherits none.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import create_engine, update
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from common import job_leases
from common.db import sync_url
from common.jobs import CeleryPublisher, Publisher
from common.models import Job
from common.models.jobs import FINISHED_STATUSES
from common.settings import Settings, get_settings
from worker.runtime import db

log = structlog.get_logger(__name__)


class Heartbeat:
    """Renews the running job's lease every JOB_HEARTBEAT_SECONDS while the block runs."""

    def __init__(self, job_id: uuid.UUID) -> None:
        settings = get_settings()
        self.job_id = job_id
        self.holder = job_leases.holder_id()
        self.interval = settings.job_heartbeat_seconds
        self.lease = settings.job_lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with db().transaction() as session:
                    held = session.execute(
                        job_leases.renew(self.job_id, self.holder, self.lease)
                    ).first()
            except Exception as exc:  # the database is down: the next beat tries again
                log.warning("job.heartbeat_failed", job_id=str(self.job_id), error=repr(exc))
                continue
            if held is None and not self._stop.is_set():
                # Reaped (e.g. this process stalled past its lease) or ended elsewhere: the
                # run goes on, and its final transaction finds out whether it still counts.
                log.warning("job.lease_lost", job_id=str(self.job_id))
                return


def reap_once(session_factory: Any, publisher: Publisher, settings: Settings) -> float:
    """Queue again (and re-publish) or fail the jobs whose lease expired; one transaction each,
    so a failed publish leaves its job to the next pass. Returns the pause before the next."""
    namespace = settings.redis_key_prefix
    for _ in range(job_leases.REAP_BATCH):
        with session_factory() as session, session.begin():
            job = session.scalars(job_leases.next_lost_job(namespace)).first()
            if job is None:
                break
            if job_leases.record_lost_run(job, settings.job_max_attempts):
                publisher.publish(job.kind, job.id)
            log.warning(
                "job.worker_lost", job_id=str(job.id), status=job.status, lost_runs=job.lost_runs
            )
    with session_factory() as session:
        expiry = session.scalar(job_leases.next_expiry_in(namespace))
    return job_leases.pause_after_pass(expiry, settings.job_heartbeat_seconds)


class Reaper:
    """The main process's reaper thread: a pass at start, then every JOB_HEARTBEAT_SECONDS, or
    as soon as a lease expires."""

    def __init__(self, celery_app: Any, settings: Settings) -> None:
        self.settings = settings
        self.publisher = CeleryPublisher(celery_app)
        self.engine = create_engine(sync_url(settings.database_url), poolclass=NullPool)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def fail_timed_out(self, job_id: str) -> None:
        """The pool killed a child at its hard time limit: the job failed (`timeout`), it was
        not lost; without this its lease would expire and it would run again."""
        now = datetime.now(UTC)
        with self.sessions() as session, session.begin():
            session.execute(
                update(Job)
                .where(Job.id == uuid.UUID(job_id), Job.status.not_in(FINISHED_STATUSES))
                .values(
                    status="failed",
                    error_code="timeout",
                    error_message="The task ran out of time.",
                    finished_at=now,
                    updated_at=now,
                    **job_leases.released(),
                )
            )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.engine.dispose()

    def _run(self) -> None:
        while True:
            pause: float = self.settings.job_heartbeat_seconds
            try:
                pause = reap_once(self.sessions, self.publisher, self.settings)
            except Exception as exc:  # database or broker down: the next pass tries again
                log.warning("job.reaper_failed", error=repr(exc))
            if self._stop.wait(pause):
                return
