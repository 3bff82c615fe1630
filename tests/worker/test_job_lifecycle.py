"""Jobs through a real Celery worker process on the real Redis and PostgreSQL."""

from __future__ import annotations

import uuid

from helpers import wait_for_job
from sqlalchemy import func, select

from common.models import EchoRecord


async def echo(client, headers, payload=None, delay=0.0):
    r = await client.post(
        "/v1/tasks/diagnostics/echo",
        json={"payload": payload, "delay_seconds": delay},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert r.headers["location"] == f"/v1/tasks/{task_id}"
    return task_id


async def test_echo_goes_queued_started_succeeded(client, worker, admin, auth_for, db):
    h = auth_for(admin)
    task_id = await echo(client, h, {"hello": [1, 2, 3]}, delay=1.0)
    running = await wait_for_job(
        client, task_id, h, until=lambda j: j["status"] == "progress" and j["progress"]["done"] > 0
    )
    assert running["progress"]["total"] == 10
    assert running["started_at"] is not None
    r = await client.get(f"/v1/tasks/{task_id}", headers=h)
    assert r.headers.get("retry-after") == "1"
    job = await wait_for_job(client, task_id, h)
    assert job["status"] == "succeeded"
    assert job["result"] == {"payload": {"hello": [1, 2, 3]}}
    assert job["progress"] == {"done": 10, "total": 10}
    assert job["attempts"] == 1 and job["error"] is None
    assert job["finished_at"] >= job["started_at"] >= job["created_at"]
    r = await client.get(f"/v1/tasks/{task_id}", headers=h)
    assert "retry-after" not in r.headers
    count = db.scalar(select(func.count()).select_from(EchoRecord))
    assert count == 1


async def test_cancel_queued_job_at_once(isolated, admin, auth_for, db):
    # A worker of its own with one process: one long job occupies it, so the next one waits
    # in the queue (prefetch 1 with late acks: the worker reserves nothing more).
    client, _, start = await isolated()
    start(concurrency=1)
    h = auth_for(admin)
    blocker = await echo(client, h, "block", delay=120)
    await wait_for_job(client, blocker, h, until=lambda j: j["status"] == "progress")
    task_id = await echo(client, h, "never runs")
    assert (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()["status"] == "queued"
    r = await client.post(f"/v1/tasks/{task_id}/cancel", headers=h)
    assert r.status_code == 202
    assert r.json()["status"] == "canceled"
    assert (await client.post(f"/v1/tasks/{blocker}/cancel", headers=h)).status_code == 202
    assert (await wait_for_job(client, blocker, h))["status"] == "canceled"
    # The worker reaches the canceled job next and skips it: it never runs or writes.
    second = await echo(client, h, "after")
    assert (await wait_for_job(client, second, h))["status"] == "succeeded"
    job = (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()
    assert job["status"] == "canceled" and job["attempts"] == 0
    assert (await client.post(f"/v1/tasks/{task_id}/cancel", headers=h)).status_code == 409
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(EchoRecord)) == 1  # only "after"


async def test_cancel_running_job_cooperatively(client, worker, admin, auth_for, db):
    h = auth_for(admin)
    task_id = await echo(client, h, "slow", delay=30)
    await wait_for_job(client, task_id, h, until=lambda j: j["status"] == "progress")
    r = await client.post(f"/v1/tasks/{task_id}/cancel", headers=h)
    assert r.status_code == 202
    job = await wait_for_job(client, task_id, h, timeout=10)
    assert job["status"] == "canceled"
    assert job["progress"]["done"] < 300
    assert db.scalar(select(func.count()).select_from(EchoRecord)) == 0


async def test_foreign_and_unknown_tasks_are_404(client, worker, admin, make_user, auth_for):
    h = auth_for(admin)
    task_id = await echo(client, h, 1)
    other_admin = make_user("admin")
    student = make_user("student")
    sh = auth_for(student)
    assert (await client.get(f"/v1/tasks/{task_id}", headers=sh)).status_code == 404
    assert (await client.post(f"/v1/tasks/{task_id}/cancel", headers=sh)).status_code == 404
    assert (await client.get(f"/v1/tasks/{uuid.uuid4()}", headers=h)).status_code == 404
    assert (await client.get("/v1/tasks/not-a-uuid", headers=h)).status_code == 422
    # Admins see all jobs.
    assert (
        await client.get(f"/v1/tasks/{task_id}", headers=auth_for(other_admin))
    ).status_code == 200
    r = await client.get("/v1/tasks", headers=sh)
    assert r.json() == [] and r.headers["x-total-count"] == "0"


async def test_list_tasks_filters(client, worker, admin, auth_for):
    h = auth_for(admin)
    ids = [await echo(client, h, i) for i in range(3)]
    for task_id in ids:
        await wait_for_job(client, task_id, h)
    r = await client.get("/v1/tasks", params={"status": "succeeded", "limit": 2}, headers=h)
    assert r.status_code == 200
    assert r.headers["x-total-count"] == "3"
    assert len(r.json()) == 2
    r = await client.get("/v1/tasks", params={"kind": "grading.regrade"}, headers=h)
    assert r.json() == []
    r = await client.get("/v1/tasks", params={"status": "bogus"}, headers=h)
    assert r.status_code == 422
    # Not a task kind (a NUL byte would reach PostgreSQL): 422, not 500.
    r = await client.get("/v1/tasks", params={"kind": "a\x00b"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_echo_validation(client, admin, auth_for):
    h = auth_for(admin)
    for body in ({"delay_seconds": -1}, {"delay_seconds": 10_000}, {"payload": "x" * 20_000}):
        r = await client.post("/v1/tasks/diagnostics/echo", json=body, headers=h)
        assert r.status_code == 422, body


async def test_a_run_whose_job_is_gone_frees_its_worker_at_the_next_checkpoint(
    isolated, admin, auth_for, db
):
    """A job deleted while it runs (with its owner, say) is no longer the run's: the run stops
    at its next progress checkpoint instead of holding a pool slot to the end."""
    from sqlalchemy import delete

    from common.models import Job

    client, _, start = await isolated()
    start(concurrency=1)
    h = auth_for(admin)
    gone = await echo(client, h, "gone", delay=120)
    await wait_for_job(client, gone, h, until=lambda j: j["status"] == "progress")
    db.execute(delete(Job).where(Job.id == uuid.UUID(gone)))
    db.commit()
    after = await echo(client, h, "after")
    job = await wait_for_job(client, after, h, timeout=30)
    assert job["status"] == "succeeded" and job["result"] == {"payload": "after"}
