"""Face jobs on the biometrics queue (prefetch 1, their own worker) survive the loss of their
whole worker like any job: the lease brings them back, and the attendance they write lands
once, all of it, in the job's final transaction."""

from __future__ import annotations

import signal

from face_photos import photo, submit_photo
from helpers import count, wait_for_job
from sqlalchemy import select

from common.models import Attendance, FacePhoto

LEASE = {"job_lease_seconds": 2, "job_heartbeat_seconds": 1}


async def test_class_photo_killed_midway_writes_nothing_then_completes_once(
    isolated,
    enrolled,
    exam,
    instructor,
    auth_for,
    db,
):
    client, _, start = await isolated(**LEASE)
    first = start(queues="biometrics", concurrency=1)
    h = auth_for(instructor)
    task_id = await submit_photo(
        client, f"/v1/tests/{exam.id}/attendance/photo", h, photo("two_people.jpg")
    )
    running = await wait_for_job(client, task_id, h, until=lambda j: j["status"] != "queued")
    first.stop(signal.SIGKILL)
    assert running["status"] == "started", running  # killed while detecting faces
    # Nothing half-written: no attendance, the photo kept for the next run.
    assert count(db, Attendance) == 0
    assert count(db, FacePhoto) == 1

    start(queues="biometrics", concurrency=1)
    job = await wait_for_job(client, task_id, h, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and job["error"] is None
    matched = {m["user_id"] for m in job["result"]["matched"]}
    assert matched == {enrolled["obama"].id, enrolled["biden"].id}
    rows = db.scalars(select(Attendance)).all()
    assert sorted(r.user_id for r in rows) == sorted(matched)
    assert count(db, FacePhoto) == 0
