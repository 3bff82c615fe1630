"""Crash safety: a killed worker loses no job and duplicates no write."""

from __future__ import annotations

import os
import signal
import time

from conftest import wait_for_job
from sqlalchemy import func, select

from common.models import EchoRecord, Job

# A short visibility timeout lets a fresh worker reclaim an unacked task within seconds; the
# settings insist it stays above every hard time limit, so those shrink with it.
SHORT_LIMITS = {
    "BROKER_VISIBILITY_TIMEOUT": "8",
    "TASK_SOFT_TIME_LIMIT": "5",
    "TASK_TIME_LIMIT": "6",
    "FACE_TASK_SOFT_TIME_LIMIT": "5",
    "FACE_TASK_TIME_LIMIT": "6",
    "GRADING_TASK_SOFT_TIME_LIMIT": "5",
    "GRADING_TASK_TIME_LIMIT": "6",
}


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
    client, _, start = await isolated()
    first = start(concurrency=1, **SHORT_LIMITS)
    h = auth_for(admin)
    task_id = await _start_echo(client, h, delay=3)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    # SIGKILL the main process and its children, as when the machine goes away.
    first.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    assert (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()["status"] == "progress"
    start(concurrency=1, **SHORT_LIMITS)
    job = await wait_for_job(client, task_id, h, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert time.monotonic() - killed_at < 60
    assert _echo_rows(db, task_id) == 1


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
