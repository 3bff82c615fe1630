"""Job leases: a lost worker costs a minute, not a visibility timeout.

A run holds a lease on its job (`jobs.lease_expires_at`, `jobs.lease_holder`) that a heartbeat
in the running process renews every JOB_HEARTBEAT_SECONDS for JOB_LEASE_SECONDS. When the
process dies (OOM kill, lost node, evicted container), the lease runs out; a reaper then counts
the run as lost and either queues the job again and re-publishes it by task name, or, once it
has lost JOB_MAX_ATTEMPTS runs, fails it with `worker_lost`.

The reaper runs in every worker main process and every API process (a thread, an asyncio task):
no beat process to deploy or forget, a fresh worker reaps as it starts, and the status is honest
even while no worker is up. `FOR UPDATE SKIP LOCKED` lets many reapers share the work.

Expiry is compared with PostgreSQL's clock only, so hosts whose clocks disagree still agree on
which leases expired. Everything here builds statements or decides; callers do the I/O (the
worker with psycopg2, the API with asyncpg).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.sql.dml import ReturningUpdate

from common.models.jobs import Job

# Statuses whose job holds a lease. `retrying` holds one too: a retry waits in its worker's
# memory (an ETA message) and is lost with it.
LEASED_STATUSES = ("started", "progress", "retrying")
WORKER_LOST = "worker_lost"
# Lost jobs handled per reaper pass; the rest wait for the next pass.
REAP_BATCH = 100


def holder_id() -> str:
    """Who holds a lease: this process, as "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str | None) -> bool:
    """True only when the holder was a process on this host that no longer exists: a killed
    pool child whose message Celery requeued at once, caught without waiting for the lease."""
    if not holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def lease_until(seconds: float) -> ColumnElement[datetime]:
    return func.now() + timedelta(seconds=seconds)


def lease_is_live() -> ColumnElement[bool]:
    return Job.lease_expires_at > func.now()


def take_lease(job: Job, seconds: float, namespace: str) -> None:
    """A run starts: it holds the job's lease (set on the locked row, before its commit)."""
    job.lease_holder = holder_id()
    job.lease_expires_at = lease_until(seconds)
    job.queue_namespace = namespace


def renew(job_id: Any, holder: str, seconds: float) -> ReturningUpdate[Any]:
    """The heartbeat: extend the lease while this process still holds it (no row: lost)."""
    return (
        update(Job)
        .where(Job.id == job_id, Job.lease_holder == holder, Job.status.in_(LEASED_STATUSES))
        .values(lease_expires_at=lease_until(seconds))
        .returning(Job.id)
    )


def released() -> dict[str, Any]:
    """Values that end a lease (the job finished or went back to the queue)."""
    return {"lease_expires_at": None, "lease_holder": None}


def next_lost_job(namespace: str) -> Select[Job]:
    """One running job of this broker namespace whose lease expired, locked for its reaper."""
    return (
        select(Job)
        .where(
            Job.lease_expires_at < func.now(),
            Job.status.in_(LEASED_STATUSES),
            Job.queue_namespace == namespace,
        )
        .order_by(Job.lease_expires_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def next_expiry_in(namespace: str) -> Select[Any]:
    """Seconds until the earliest lease of this namespace expires (None: no job holds one)."""
    return select(func.extract("epoch", func.min(Job.lease_expires_at) - func.now())).where(
        Job.lease_expires_at.is_not(None),
        Job.status.in_(LEASED_STATUSES),
        Job.queue_namespace == namespace,
    )


def pause_after_pass(seconds_to_expiry: float | None, heartbeat: float) -> float:
    """How long a reaper sleeps: its interval, or less when a lease expires sooner (a live
    job's lease is always at least a heartbeat away, so only dying ones wake it early). At
    least half a second: an expired lease whose row is locked (a long final transaction, whose
    heartbeat waits on that lock) must not make the reapers spin."""
    if seconds_to_expiry is None:
        return float(heartbeat)
    return min(float(heartbeat), max(0.5, float(seconds_to_expiry) + 0.05))


def record_lost_run(job: Job, max_attempts: int) -> bool:
    """Count the lost run on a locked job; True when it goes back to the queue (re-publish it).

    A cancel requested meanwhile ends it `canceled`; the last allowed loss ends it `failed`
    with `worker_lost`; otherwise it reads `queued` again, its error saying why.
    """
    now = datetime.now(UTC)
    job.lost_runs += 1
    job.lease_expires_at = None
    job.lease_holder = None
    job.updated_at = now
    if job.cancel_requested:
        job.status, job.finished_at = "canceled", now
        return False
    job.error_code = WORKER_LOST
    if job.lost_runs >= max_attempts:
        job.status, job.finished_at = "failed", now
        job.error_message = (
            f"The worker running this task was lost {job.lost_runs} times; it was not retried."
        )
        return False
    job.status = "queued"
    job.error_message = "The worker running this task was lost; the task was queued again."
    return True
