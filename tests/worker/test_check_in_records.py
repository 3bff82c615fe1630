"""Records a student's action cannot overwrite: the check-in window (API and worker) and
records written by hand, against a real biometrics worker and the shared photos."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from exam_factories import record_attendance as record_by_hand
from face_photos import photo
from face_photos import submit_photo as submit
from helpers import count, wait_for_job
from sqlalchemy import select

from common.models import Attendance, FacePhoto, Job


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _set_window(client, exam, headers, **window: datetime | None) -> None:
    body = {k: _iso(v) if v else None for k, v in window.items()}
    r = await client.put(f"/v1/tests/{exam.id}", json=body, headers=headers)
    assert r.status_code == 200, r.text


def record_of(db, exam, user) -> Attendance:
    db.expire_all()
    return db.scalars(
        select(Attendance).where(Attendance.test_id == exam.id, Attendance.user_id == user.id)
    ).one()


async def test_check_in_outside_the_window_is_refused_at_once(
    client, enrolled, exam, instructor, auth_for, db, settings
):
    obama, ih = enrolled["obama"], auth_for(instructor)
    h, url = auth_for(obama), f"/v1/tests/{exam.id}/check-in"
    now = datetime.now(UTC)
    assert settings.check_in_early_seconds == 900
    files = {"file": ("p.jpg", photo("obama2.jpg"), "image/jpeg")}
    cases = [
        # Closed a minute ago.
        ({"opens_at": now - timedelta(hours=2), "closes_at": now - timedelta(minutes=1)},
         "closed"),
        # Opens in an hour: beyond the 15 minutes before the opening.
        ({"opens_at": now + timedelta(hours=1), "closes_at": None}, "not_yet_open"),
    ]  # fmt: skip
    for window, reason in cases:
        await _set_window(client, exam, ih, **window)
        r = await client.post(url, files=files, headers=h)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "test_not_open" and error["details"]["reason"] == reason
        assert error["message"]
    assert count(db, Job) == 0 and count(db, FacePhoto) == 0  # nothing queued, nothing stored
    # Ten minutes before the opening is inside the window.
    await _set_window(client, exam, ih, opens_at=now + timedelta(minutes=10), closes_at=None)
    r = await client.post(url, files=files, headers=h)
    assert r.status_code == 202, r.text


async def test_a_check_in_queued_before_the_close_records_nothing_after_it(
    isolated, app, worker, enrolled, exam, instructor, auth_for, db
):
    # An API on a Redis prefix no worker listens to: the check-in stays queued...
    parked, _, _ = await isolated()
    obama, ih = enrolled["obama"], auth_for(instructor)
    h = auth_for(obama)
    now = datetime.now(UTC)
    await _set_window(parked, exam, ih, opens_at=now - timedelta(hours=1),
                      closes_at=now + timedelta(hours=1))  # fmt: skip
    task_id = await submit(parked, f"/v1/tests/{exam.id}/check-in", h, photo("obama2.jpg"))
    # ...while the test closes.
    await _set_window(parked, exam, ih, closes_at=now - timedelta(seconds=1))
    app.state.resources.publisher.publish("faces.check_in", uuid.UUID(task_id))
    job = await wait_for_job(parked, task_id, h, timeout=90)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["recorded"] is False and result["reason"] == "test_not_open", result
    assert result["details"]["reason"] == "closed" and result["message"]
    assert count(db, Attendance) == 0
    assert count(db, FacePhoto) == 0


async def test_a_check_in_leaves_a_manual_record_as_it_was(
    client, worker, enrolled, exam, instructor, auth_for, db
):
    obama, ih = enrolled["obama"], auth_for(instructor)
    manual = await record_by_hand(client, ih, exam, obama, "absent")
    h = auth_for(obama)
    task_id = await submit(client, f"/v1/tests/{exam.id}/check-in", h, photo("obama2.jpg"))
    job = await wait_for_job(client, task_id, h, timeout=90)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["verified"] is True and result["recorded"] is False, result
    assert result["reason"] == "manual_record" and "by hand" in result["message"]
    assert result["attendance_id"] == manual["id"]
    r = await client.get(f"/v1/attendance/{manual['id']}", headers=ih)
    assert r.json() == manual  # status, method, recorder and time untouched
    assert count(db, FacePhoto) == 0


async def test_a_manual_change_made_while_a_check_in_waits_stands(
    isolated, app, worker, enrolled, exam, instructor, auth_for, db
):
    """The face record exists; a second check-in is queued; the instructor marks the student
    absent by hand; then the queued check-in runs: the manual record stands."""
    parked, _, _ = await isolated()
    obama, ih = enrolled["obama"], auth_for(instructor)
    h = auth_for(obama)
    url = f"/v1/tests/{exam.id}/check-in"
    first = await submit(parked, url, h, photo("obama2.jpg"))
    app.state.resources.publisher.publish("faces.check_in", uuid.UUID(first))
    done = await wait_for_job(parked, first, h, timeout=90)
    assert done["result"]["recorded"] is True, done
    face_record = record_of(db, exam, obama)
    assert (face_record.status, face_record.method) == ("present", "face")

    queued = await submit(parked, url, h, photo("obama3.jpg"))
    r = await parked.get(f"/v1/attendance/{face_record.id}", headers=ih)
    body = {**r.json(), "status": "absent"}  # the resource as read, with a new status
    r = await parked.put(f"/v1/attendance/{face_record.id}", json=body, headers=ih)
    assert r.status_code == 200, r.text
    app.state.resources.publisher.publish("faces.check_in", uuid.UUID(queued))
    job = await wait_for_job(parked, queued, h, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["result"]["recorded"] is False and job["result"]["reason"] == "manual_record"
    row = record_of(db, exam, obama)
    assert (row.status, row.method, row.recorded_by) == ("absent", "manual", instructor.id)


async def test_a_class_photo_leaves_manual_records_as_they_were(
    client, worker, enrolled, exam, instructor, auth_for, db
):
    ih = auth_for(instructor)
    biden, obama = enrolled["biden"], enrolled["obama"]
    manual = await record_by_hand(client, ih, exam, biden, "excused")
    task_id = await submit(
        client, f"/v1/tests/{exam.id}/attendance/photo", ih, photo("two_people.jpg")
    )
    job = await wait_for_job(client, task_id, ih, timeout=90)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert {m["user_id"] for m in result["matched"]} == {obama.id, biden.id}
    assert result["left_as_is"] == [
        {"user_id": biden.id, "attendance_id": manual["id"], "reason": "manual_record"}
    ]
    kept = record_of(db, exam, biden)
    assert (kept.status, kept.method, kept.distance) == ("excused", "manual", None)
    taken = record_of(db, exam, obama)
    assert (taken.status, taken.method) == ("present", "face")


async def test_a_manual_write_racing_a_check_in_wins(
    client, worker, enrolled, exam, instructor, auth_for, db, sync_db
):
    """The instructor's change is in flight (row locked, not committed) when the worker records:
    the worker waits for it, then leaves the manual record as it is."""
    import asyncio
    import time

    from sqlalchemy import text, update

    obama = enrolled["obama"]
    h = auth_for(obama)
    url = f"/v1/tests/{exam.id}/check-in"
    first = await wait_for_job(client, await submit(client, url, h, photo("obama2.jpg")), h)
    assert first["result"]["recorded"] is True, first
    # The manual write, as the API's PUT makes it, left uncommitted.
    db.execute(
        update(Attendance)
        .where(Attendance.id == first["result"]["attendance_id"])
        .values(status="absent", method="manual", distance=None, recorded_by=instructor.id)
    )
    task_id = await submit(client, url, h, photo("obama3.jpg"))
    try:
        deadline = time.monotonic() + 90
        with sync_db.engine.connect() as probe:
            # Until the worker's upsert waits for our row lock.
            while not probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            ).scalar():
                probe.rollback()  # pg_stat_activity is a snapshot per transaction
                job = (await client.get(f"/v1/tasks/{task_id}", headers=h)).json()
                assert job["status"] not in ("succeeded", "failed"), job
                assert time.monotonic() < deadline, "the worker never reached the record"
                await asyncio.sleep(0.05)
        db.commit()
    finally:
        db.rollback()
    job = await wait_for_job(client, task_id, h, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["result"]["recorded"] is False and job["result"]["reason"] == "manual_record"
    row = record_of(db, exam, obama)
    assert (row.status, row.method, row.recorded_by) == ("absent", "manual", instructor.id)
