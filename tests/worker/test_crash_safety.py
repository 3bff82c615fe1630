"""Crash safety: a killed worker loses no job and duplicates no write."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from helpers import wait_for_job
from sqlalchemy import func, select

from common.models import EchoRecord, Job

# A short visibility timeout makes Redis restore a dead worker's unacked message within
# seconds; the settings insist it stays above every hard time limit, so those shrink with it.
SHORT_LIMITS = {
    "BROKER_VISIBILITY_TIMEOUT": "8",
    "TASK_SOFT_TIME_LIMIT": "5",
    "TASK_TIME_LIMIT": "6",
    "FACE_TASK_SOFT_TIME_LIMIT": "5",
    "FACE_TASK_TIME_LIMIT": "6",
    "GRADING_TASK_SOFT_TIME_LIMIT": "5",
    "GRADING_TASK_TIME_LIMIT": "6",
}


# Quick leases for the worker processes of these tests (the defaults: 30 s renewed every 10 s).
SHORT_LEASE = {"JOB_LEASE_SECONDS": "2", "JOB_HEARTBEAT_SECONDS": "1"}


async def _start_echo(client, headers, delay):
    r = await client.post(
        "/v1/tasks/diagnostics/echo",
        json={"payload": "crash", "delay_seconds": delay},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    return r.json()["task_id"]


def _echo_rows(db, task_id):
    db.expire_all()
    return db.scalar(
        select(func.count()).select_from(EchoRecord).where(EchoRecord.job_id == task_id)
    )


async def test_kill_child_mid_task_redelivers_and_succeeds_once(isolated, admin, auth_for, db):
    client, _, start = await isolated()
    worker = start(concurrency=1)
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=2)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    children = worker.children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)
    job = await wait_for_job(client, task_id, h, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert _echo_rows(db, task_id) == 1
    worker.stop()


async def test_kill_whole_worker_then_fresh_worker_completes(isolated, admin, auth_for, db):
    # The visibility timeout keeps its default (an hour): the lease brings the job back. The
    # API's reaper is held off, so the fresh worker's own reaper is what re-publishes it.
    client, _, start = await isolated(job_lease_seconds=3600, job_heartbeat_seconds=1800)
    first = start(concurrency=1, **SHORT_LEASE)
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=3)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    # SIGKILL the main process and its children, as when the machine goes away.
    first.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    assert (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()["status"] == "progress"
    fresh = start(concurrency=1, **SHORT_LEASE)
    job = await wait_for_job(client, task_id, h, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and job["error"] is None
    assert time.monotonic() - killed_at < 60
    assert _echo_rows(db, task_id) == 1
    assert f'"job_id": "{task_id}"' in fresh.log() and "job.worker_lost" in fresh.log()


async def test_without_a_worker_a_lost_job_reads_queued_then_runs_once(
    isolated, admin, auth_for, db
):
    client, _, start = await isolated(job_lease_seconds=2, job_heartbeat_seconds=1)
    first = start(concurrency=1)
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=3)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    first.stop(signal.SIGKILL)
    # No worker at all: the API's reaper tells the truth, and the message waits in the queue.
    job = await wait_for_job(
        client, task_id, h, timeout=20, until=lambda j: j["status"] != "progress"
    )
    assert job["status"] == "queued", job
    assert job["attempts"] == 1
    assert job["error"]["code"] == "worker_lost"
    assert "worker" in job["error"]["message"] and "lost" in job["error"]["message"]
    await asyncio.sleep(3)  # several reaper passes later: still queued, counted once
    job = (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()
    assert (job["status"], job["attempts"]) == ("queued", 1), job
    listed = (await client.get("/v1/tasks", params={"status": "queued"}, headers=h)).json()
    assert [j["id"] for j in listed] == [task_id]
    assert _echo_rows(db, task_id) == 0

    start(concurrency=1)
    job = await wait_for_job(client, task_id, h, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and job["error"] is None
    assert _echo_rows(db, task_id) == 1


async def test_a_job_that_keeps_losing_its_worker_fails_worker_lost(isolated, admin, auth_for, db):
    client, _, start = await isolated(
        job_lease_seconds=2, job_heartbeat_seconds=1, job_max_attempts=2
    )
    worker = start(concurrency=1)
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=60)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    # First loss: the pool child dies; Celery requeues the message at once and the next child
    # takes over from the dead holder without waiting for the lease.
    os.kill(worker.children()[0], signal.SIGKILL)
    job = await wait_for_job(
        client, task_id, h, until=lambda j: j["status"] == "progress" and j["attempts"] == 2
    )
    assert job["error"]["code"] == "worker_lost"
    # Second loss: the whole worker. That was the last allowed run: no third one.
    worker.stop(signal.SIGKILL)
    job = await wait_for_job(client, task_id, h, timeout=20)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "worker_lost"
    assert job["attempts"] == 2 and job["finished_at"] is not None
    db.expire_all()
    assert db.get(Job, task_id).lost_runs == 2
    assert _echo_rows(db, task_id) == 0


def _handled(worker, task_id: str) -> list[str]:
    """The fresh worker's log lines about deliveries of the job that it did not run."""
    return [
        line
        for line in worker.log().splitlines()
        if task_id in line and ("job.already_finished" in line or "job.duplicate_delivery" in line)
    ]


async def test_the_original_message_restored_later_writes_nothing(isolated, admin, auth_for, db):
    # The dead worker's unacked message comes back after the (short) visibility timeout, while
    # the re-published run is still going or after it ended: it must change nothing.
    client, _, start = await isolated(job_lease_seconds=2, job_heartbeat_seconds=1)
    first = start(concurrency=1, **SHORT_LIMITS)
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=2)  # well under the 5 s soft time limit
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    first.stop(signal.SIGKILL)
    fresh = start(concurrency=2, **SHORT_LIMITS)
    job = await wait_for_job(client, task_id, h, timeout=60)
    assert job["status"] == "succeeded", job
    deadline = time.monotonic() + 30
    while not _handled(fresh, task_id):
        assert time.monotonic() < deadline, "the original message was never redelivered"
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
    job = (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert _echo_rows(db, task_id) == 1


async def test_a_child_killed_at_its_hard_time_limit_fails_timeout_and_is_not_rerun(
    isolated, admin, auth_for, db
):
    # A stopped child ignores its soft time limit; the pool kills it at the hard one. That is
    # a timeout, not a lost worker: the job fails once and its lease does not bring it back.
    client, _, start = await isolated(job_lease_seconds=10, job_heartbeat_seconds=5)
    worker = start(concurrency=1, TASK_SOFT_TIME_LIMIT="2", TASK_TIME_LIMIT="3")
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=60)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    os.kill(worker.children()[0], signal.SIGSTOP)
    job = await wait_for_job(client, task_id, h, timeout=30)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "timeout" and job["attempts"] == 1
    await asyncio.sleep(12)  # past the lease it held: still failed, never run again
    job = (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()
    assert (job["status"], job["attempts"]) == ("failed", 1), job
    db.expire_all()
    assert db.get(Job, task_id).lost_runs == 0
    assert _echo_rows(db, task_id) == 0


async def test_broker_down_at_enqueue_is_503_and_recovers(isolated, admin, auth_for, db, tmp_path):
    from common import embedded

    redis_url, redis_proc = embedded.start_redis(tmp_path / "redis", persist=False)
    try:
        client, _, start = await isolated(redis_url=redis_url, broker_connect_timeout=0.5)
        start(REDIS_URL=redis_url)
        h = auth_for(admin)
        ok_id = await _start_echo(client, h, delay=0)
        assert (await wait_for_job(client, ok_id, h))["status"] == "succeeded"

        redis_proc.kill()
        redis_proc.wait()
        r = await client.post(
            "/v1/tasks/diagnostics/echo", json={"payload": 1, "delay_seconds": 0}, headers=h
        )
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "queue_unavailable"
        failed_id = error["details"]["task_id"]
        db.expire_all()
        job = db.get(Job, failed_id)
        assert job.status == "failed" and job.error_code == "broker_unavailable"

        # Same socket path, new server: the API reconnects without a restart.
        redis_url2, redis_proc = embedded.start_redis(tmp_path / "redis", persist=False)
        assert redis_url2 == redis_url
        again = await _start_echo(client, h, delay=0)
        assert (await wait_for_job(client, again, h, timeout=60))["status"] == "succeeded"
    finally:
        redis_proc.kill()
