"""The API's reaper of lost jobs (common.job_leases): an asyncio task in every API process.

With it, a job whose worker died reads `queued` (or `failed` with `worker_lost`) within a
heartbeat of its lease expiring even while no worker is up, and its message is waiting in the
queue for the next worker. The workers run the same pass (worker.leases); SKIP LOCKED shares
the work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from api.resources import Resources
from common import job_leases

log = structlog.get_logger(__name__)


async def reap_once(resources: Resources) -> float:
    """One pass; one transaction per job, so a failed publish leaves it to the next pass.
    Returns the pause before the next pass."""
    settings = resources.settings
    namespace = settings.redis_key_prefix
    for _ in range(job_leases.REAP_BATCH):
        async with resources.db.sessionmaker() as session, session.begin():
            job = (await session.scalars(job_leases.next_lost_job(namespace))).first()
            if job is None:
                break
            if job_leases.record_lost_run(job, settings.job_max_attempts):
                await asyncio.to_thread(resources.publisher.publish, job.kind, job.id)
            log.warning(
                "job.worker_lost", job_id=str(job.id), status=job.status, lost_runs=job.lost_runs
            )
    async with resources.db.sessionmaker() as session:
        expiry = await session.scalar(job_leases.next_expiry_in(namespace))
    return job_leases.pause_after_pass(expiry, settings.job_heartbeat_seconds)


async def _loop(resources: Resources) -> None:
    while True:
        pause: float = resources.settings.job_heartbeat_seconds
        try:
            pause = await reap_once(resources)
        except Exception as exc:  # database or broker down: the next pass tries again
            log.warning("job.reaper_failed", error=repr(exc))
        await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def running(resources: Resources) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(_loop(resources), name="job-reaper")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
