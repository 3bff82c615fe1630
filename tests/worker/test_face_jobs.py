"""Face jobs end to end: the API, a real Celery worker on the biometrics queue, real photos of
known people (../shared/faces), real face_recognition, PostgreSQL. No mocks.

Enrolling through the worker is tested once; other tests arrange enrollments directly with
templates computed once per module by the same pipeline, to keep the module fast.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest
from exam_factories import class_of
from face_photos import (
    ENROLL,
    OBAMA_CHECK_INS,
    image_bytes,
    pair_107_75,
    photo,
    require_face_photos,
    submit_photo,
)
from helpers import count, wait_for_job
from PIL import Image
from sqlalchemy import select

from common.faces import encoding_from_bytes
from common.models import Attendance, FaceEnrollment, FacePhoto, Job

FACES = require_face_photos()  # fails loudly without them: no skips


async def obama_alone_is_matched_in_the_class_photo(client, exam, enrolled, headers) -> None:
    """two_people.jpg (Biden and Obama) taken for `exam`: Obama matched, Biden unknown."""
    url = f"/v1/tests/{exam.id}/attendance/photo"
    job = await wait_for_job(
        client, await submit_photo(client, url, headers, photo("two_people.jpg")), headers
    )
    assert job["status"] == "succeeded", job
    assert [m["user_id"] for m in job["result"]["matched"]] == [enrolled["obama"].id]
    assert job["result"]["unknown_faces"] == 1


async def finish_all(client, task_ids: list[str], headers) -> list[dict]:
    return list(
        await asyncio.gather(*(wait_for_job(client, t, headers, timeout=90) for t in task_ids))
    )


async def test_enroll_three_students(
    client, worker, people, admin, instructor, auth_for, db, templates
):
    from common.models import ClassMember, SchoolClass

    obama = people["obama"]
    group = SchoolClass(owner_id=instructor.id, name="Miranda's class")
    db.add(group)
    db.flush()
    db.add(ClassMember(class_id=group.id, user_id=people["miranda"].id))
    db.commit()
    # The student themself, an admin, and an instructor of the student's class.
    headers = {"obama": auth_for(obama), "biden": auth_for(admin)}
    headers["miranda"] = auth_for(instructor)
    jobs = {
        who: await submit_photo(
            client, f"/v1/users/{people[who].id}/faces", headers[who], photo(name)
        )
        for who, name in ENROLL.items()
    }
    done = {who: await wait_for_job(client, jobs[who], headers[who], timeout=90) for who in jobs}
    for who, job in done.items():
        assert job["status"] == "succeeded", (who, job, worker.log()[-3000:])
        result = job["result"]
        assert set(result) == {"face_id", "status", "model", "quality"}
        assert result["model"] == "dlib_face_recognition_resnet_model_v1"
        assert result["quality"]["face_px"] >= 80 and result["quality"]["detector_score"] > 0
        row = db.get(FaceEnrollment, result["face_id"])
        assert row.user_id == people[who].id
        # The worker's template is the pipeline's: the same photo gives the same encoding.
        stored = encoding_from_bytes(
            db.scalar(select(FaceEnrollment.encoding).filter_by(id=row.id))
        )
        assert np.allclose(stored, encoding_from_bytes(templates[who]), atol=1e-6)

    # Obama's own enrollment waits for review with its photo; a reviewer's upload is their
    # approval, and its photo is gone.
    assert {who: job["result"]["status"] for who, job in done.items()} == {
        "obama": "pending",
        "biden": "approved",
        "miranda": "approved",
    }
    rows = {who: db.get(FaceEnrollment, job["result"]["face_id"]) for who, job in done.items()}
    assert rows["obama"].reviewed_by is None and rows["obama"].reviewed_at is None
    assert rows["biden"].reviewed_by == admin.id
    assert rows["miranda"].reviewed_by == instructor.id and rows["miranda"].reviewed_at
    # Nothing biometric in the job rows; only the pending enrollment's photo is left.
    for job in db.scalars(select(Job)):
        assert len(json.dumps(job.params)) < 100 and len(json.dumps(job.result)) < 200
    assert [p.id for p in db.scalars(select(FacePhoto))] == [rows["obama"].photo_id]
    r = await client.get(f"/v1/users/{obama.id}/faces", headers=auth_for(obama))
    assert r.status_code == 200 and len(r.json()) == 1
    assert r.json()[0]["id"] == done["obama"]["result"]["face_id"]
    assert r.json()[0]["status"] == "pending" and r.json()[0]["photo_kept"] is True


async def test_obama_checks_in_with_every_photo_and_one_record(
    client, worker, enrolled, exam, auth_for, db
):
    obama = enrolled["obama"]
    h = auth_for(obama)
    url = f"/v1/tests/{exam.id}/check-in"
    task_ids = [await submit_photo(client, url, h, photo(name), name) for name in OBAMA_CHECK_INS]
    jobs = await finish_all(client, task_ids, h)
    records = set()
    for name, job in zip(OBAMA_CHECK_INS, jobs, strict=True):
        assert job["status"] == "succeeded", (name, job)
        assert job["result"]["verified"] is True, (name, job["result"])
        assert job["result"]["distance"] <= 0.5, (name, job["result"])
        records.add(job["result"]["attendance_id"])
    # A successful check-in per photo, one record.
    assert len(records) == 1
    rows = db.scalars(select(Attendance)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.test_id, row.user_id, row.status, row.method) == (
        exam.id,
        obama.id,
        "present",
        "face",
    )
    assert row.recorded_by == obama.id and 0 < row.distance <= 0.5
    assert count(db, FacePhoto) == 0
    r = await client.get("/v1/attendance", headers=h)
    assert [(a["id"], a["method"], a["status"]) for a in r.json()] == [(row.id, "face", "present")]


async def test_someone_else_is_not_verified(client, worker, enrolled, exam, auth_for, db):
    obama = enrolled["obama"]
    h = auth_for(obama)
    task_id = await submit_photo(client, f"/v1/tests/{exam.id}/check-in", h, photo("biden.jpg"))
    job = await wait_for_job(client, task_id, h, timeout=90)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["verified"] is False
    assert result["reason"] == "not_a_match"
    assert result["distance"] > 0.6
    assert count(db, Attendance) == 0
    assert count(db, FacePhoto) == 0


async def test_class_photo_marks_biden_and_obama_present(
    client, worker, enrolled, make_user, exam, instructor, auth_for, db
):
    make_user("student")  # a student without an enrollment is simply not a candidate
    h = auth_for(instructor)
    task_id = await submit_photo(
        client, f"/v1/tests/{exam.id}/attendance/photo", h, photo("two_people.jpg")
    )
    job = await wait_for_job(client, task_id, h, timeout=90)
    assert job["status"] == "succeeded", job
    result = job["result"]
    # Matches come best distance first, not left to right: compare sets.
    matched = {m["user_id"]: m["distance"] for m in result["matched"]}
    assert set(matched) == {enrolled["obama"].id, enrolled["biden"].id}
    assert all(d < 0.6 for d in matched.values())
    assert result["unknown_faces"] == 0 and result["faces"] == 2
    rows = db.scalars(select(Attendance).order_by(Attendance.user_id)).all()
    assert {r.user_id for r in rows} == set(matched)
    for r in rows:
        assert (r.test_id, r.status, r.method) == (exam.id, "present", "face")
        assert r.recorded_by == instructor.id
        assert r.distance == pytest.approx(matched[r.user_id], abs=1e-4)
    assert count(db, FacePhoto) == 0


def _tiny_face_photo(face_px: int) -> bytes:
    face = Image.open(FACES / "obama.jpg").convert("RGB")
    scale = face_px / 267  # obama.jpg's face box is ~267 px
    face = face.resize((round(face.width * scale), round(face.height * scale)))
    canvas = Image.new("RGB", (640, 480), (120, 120, 120))
    canvas.paste(face, (200, 120))
    return image_bytes(canvas)


async def test_unusable_photos_fail_with_clear_codes_and_the_worker_goes_on(
    client, worker, student, admin, exam, auth_for, db
):
    jpeg = photo("obama.jpg")
    gradient = np.tile(np.linspace(0, 255, 800, dtype=np.uint8), (600, 1))
    cases = {
        "bad_image": [
            b"",  # zero bytes
            jpeg[: len(jpeg) // 2],  # corrupted: cut in half
            b"name,score\nalice,10\n",  # not an image
        ],
        # 100 megapixels in a few KB: refused from the header, never decoded.
        "image_too_large": [image_bytes(Image.new("1", (10_000, 10_000)))],
        "no_face": [image_bytes(Image.fromarray(gradient))],
        # The real pair photo, and the pair: 107 px and 75 px (under the 80 px floor).
        "multiple_faces": [photo("two_people.jpg"), pair_107_75()],
        "face_too_small": [_tiny_face_photo(50)],
    }
    h = auth_for(student)
    url = f"/v1/users/{student.id}/faces"
    submitted = [
        (code, await submit_photo(client, url, h, data))
        for code, blobs in cases.items()
        for data in blobs
    ]
    assert len(cases["image_too_large"][0]) < 100_000
    good = await submit_photo(client, url, h, photo("obama.jpg"))
    jobs = await finish_all(client, [t for _, t in submitted] + [good], h)
    for (code, _), job in zip(submitted, jobs, strict=False):
        assert job["status"] == "failed", (code, job)
        assert job["error"]["code"] == code, (code, job)
        assert job["error"]["message"]
    assert jobs[-1]["status"] == "succeeded", jobs[-1]
    assert count(db, FaceEnrollment) == 1
    # Failed jobs delete their photo too; the good one waits for its reviewer.
    assert count(db, FacePhoto) == 1
    face_id = jobs[-1]["result"]["face_id"]
    r = await client.post(f"{url}/{face_id}/approve", headers=auth_for(admin))
    assert r.status_code == 200, r.text
    assert count(db, FacePhoto) == 0

    # A check-in photo without a face fails the same way and records nothing.
    task_id = await submit_photo(client, f"/v1/tests/{exam.id}/check-in", h, cases["no_face"][0])
    job = await wait_for_job(client, task_id, h, timeout=90)
    assert job["status"] == "failed" and job["error"]["code"] == "no_face"
    assert count(db, Attendance) == 0


async def test_a_photo_deleted_before_its_job_runs(isolated, app, worker, student, auth_for, db):
    # An API on a Redis prefix no worker listens to: the enrollment stays queued...
    parked, _, _ = await isolated()
    h = auth_for(student)
    url = f"/v1/users/{student.id}/faces"
    task_id = await submit_photo(parked, url, h, photo("obama.jpg"))
    # ...while the student deletes their face data, photo included.
    assert (await parked.delete(url, headers=h)).status_code == 204
    # Then the message reaches the worker after all: the job fails and writes nothing.
    app.state.resources.publisher.publish("faces.enroll", uuid.UUID(task_id))
    job = await wait_for_job(parked, task_id, h, timeout=90)
    assert job["status"] == "failed" and job["error"]["code"] == "photo_missing", job
    assert count(db, FaceEnrollment) == 0


async def test_kept_photos(isolated, worker, settings, student, admin, exam, auth_for, db):
    # An API with KEEP_FACE_PHOTOS, on the shared worker's queue.
    client, _, _ = await isolated(keep_face_photos=True, redis_key_prefix=settings.redis_key_prefix)
    h = auth_for(student)
    url = f"/v1/users/{student.id}/faces"
    job = await wait_for_job(client, await submit_photo(client, url, h, photo("obama.jpg")), h)
    assert job["status"] == "succeeded", job
    face = db.get(FaceEnrollment, job["result"]["face_id"])
    assert face.photo_id is not None
    assert db.get(FacePhoto, face.photo_id).data == photo("obama.jpg")
    r = await client.get(url, headers=h)
    assert r.json()[0]["photo_kept"] is True
    # Approved, the photo stays: it arrived under KEEP_FACE_PHOTOS.
    r = await client.post(f"{url}/{face.id}/approve", headers=auth_for(admin))
    assert r.status_code == 200 and r.json()["photo_kept"] is True
    check_in = await submit_photo(client, f"/v1/tests/{exam.id}/check-in", h, photo("obama2.jpg"))
    assert (await wait_for_job(client, check_in, h))["result"]["verified"] is True
    assert count(db, FacePhoto) == 2
    # Deleting the face data removes the templates and every kept photo.
    assert (await client.delete(url, headers=h)).status_code == 204
    assert count(db, FaceEnrollment) == 0 and count(db, FacePhoto) == 0


async def test_class_photo_matches_only_the_tests_classes(
    client, worker, enrolled, exam, instructor, auth_for, db
):
    from common.models import ClassMember, ExamClass, SchoolClass

    # The test is assigned to a class of Obama and Miranda: Biden's face is someone unknown.
    group = SchoolClass(owner_id=instructor.id, name="Group B")
    db.add(group)
    db.flush()
    db.add_all(
        [
            ClassMember(class_id=group.id, user_id=enrolled["obama"].id),
            ClassMember(class_id=group.id, user_id=enrolled["miranda"].id),
            ExamClass(test_id=exam.id, class_id=group.id),
        ]
    )
    db.commit()
    await obama_alone_is_matched_in_the_class_photo(client, exam, enrolled, auth_for(instructor))
    assert [r.user_id for r in db.scalars(select(Attendance))] == [enrolled["obama"].id]
    # A member checks in to it as usual.
    oh = auth_for(enrolled["obama"])
    url = f"/v1/tests/{exam.id}/check-in"
    job = await wait_for_job(client, await submit_photo(client, url, oh, photo("obama3.jpg")), oh)
    assert job["result"]["verified"] is True
    assert count(db, Attendance) == 1


def test_dlib_is_loaded_in_the_worker_children_only(worker):
    """The shared worker consumes `biometrics`: its children preload dlib (worker_process_init),
    its main process never imports it."""
    import psutil

    def has_dlib(pid: int) -> bool:
        return any("dlib" in m.path for m in psutil.Process(pid).memory_maps())

    import time

    deadline = time.monotonic() + 30  # a child that just started may still be loading
    while not ((children := worker.children()) and all(has_dlib(pid) for pid in children)):
        assert time.monotonic() < deadline, "worker children without dlib"
        time.sleep(0.2)
    assert not has_dlib(worker.proc.pid)


# -- enrollments are vouched for -----------------------------------------------------------


async def test_a_students_own_enrollment_counts_once_approved(
    client, worker, people, instructor, exam, auth_for, db
):
    obama = people["obama"]
    class_of(db, instructor, obama)
    h, hi = auth_for(obama), auth_for(instructor)
    url = f"/v1/users/{obama.id}/faces"
    job = await wait_for_job(client, await submit_photo(client, url, h, photo("obama.jpg")), h)
    assert job["status"] == "succeeded", job
    assert job["result"]["status"] == "pending"
    face_id = job["result"]["face_id"]

    # Not yet: the check-in is refused at once, nothing is queued.
    r = await client.post(
        f"/v1/tests/{exam.id}/check-in",
        files={"file": ("me.jpg", photo("obama2.jpg"), "image/jpeg")},
        headers=h,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_enrolled"

    # The instructor compares the photo with the student, then approves.
    r = await client.get(f"{url}/{face_id}/photo", headers=hi)
    assert r.status_code == 200 and r.content == photo("obama.jpg")
    r = await client.post(f"{url}/{face_id}/approve", headers=hi)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert count(db, FacePhoto) == 0

    check_in = await submit_photo(client, f"/v1/tests/{exam.id}/check-in", h, photo("obama2.jpg"))
    job = await wait_for_job(client, check_in, h, timeout=90)
    assert job["status"] == "succeeded" and job["result"]["verified"] is True, job


async def test_class_photos_match_approved_enrollments_only(
    client, worker, enrolled, exam, instructor, admin, auth_for, db
):
    # Biden's enrollment waits for review: his face in the class photo is someone unknown.
    db.execute(
        FaceEnrollment.__table__.update()
        .where(FaceEnrollment.user_id == enrolled["biden"].id)
        .values(status="pending")
    )
    db.commit()
    await obama_alone_is_matched_in_the_class_photo(client, exam, enrolled, auth_for(instructor))
    # Nor does a pending enrollment let its student check in by photo (a 409 at once).
    r = await client.post(
        f"/v1/tests/{exam.id}/check-in",
        files={"file": ("me.jpg", photo("biden.jpg"), "image/jpeg")},
        headers=auth_for(enrolled["biden"]),
    )
    assert r.status_code == 409
    # Rejected: never matched either.
    biden_face = db.scalar(select(FaceEnrollment.id).filter_by(user_id=enrolled["biden"].id))
    r = await client.post(
        f"/v1/users/{enrolled['biden'].id}/faces/{biden_face}/reject", headers=auth_for(admin)
    )
    assert r.status_code == 200
    await obama_alone_is_matched_in_the_class_photo(client, exam, enrolled, auth_for(instructor))


async def test_without_approval_an_enrollment_counts_at_once(isolated, student, auth_for, db):
    client, _, start = await isolated(face_enrollment_approval=False)
    start()
    h = auth_for(student)
    url = f"/v1/users/{student.id}/faces"
    job = await wait_for_job(
        client, await submit_photo(client, url, h, photo("obama.jpg")), h, timeout=90
    )
    assert job["status"] == "succeeded", job
    assert job["result"]["status"] == "approved"
    (listed,) = (await client.get(url, headers=h)).json()
    assert listed["status"] == "approved" and listed["reviewed_by"] is None
    assert count(db, FacePhoto) == 0


async def test_an_upload_by_a_demoted_instructor_is_not_an_approval(
    isolated, app, worker, student, instructor, auth_for, db
):
    from common.models import User

    class_of(db, instructor, student)
    parked, _, _ = await isolated()  # no worker on its prefix: the enrollment stays queued
    hi = auth_for(instructor)
    task_id = await submit_photo(parked, f"/v1/users/{student.id}/faces", hi, photo("obama.jpg"))
    db.execute(User.__table__.update().where(User.id == instructor.id).values(role="student"))
    db.commit()
    app.state.resources.publisher.publish("faces.enroll", uuid.UUID(task_id))
    job = await wait_for_job(parked, task_id, auth_for(db.get(User, instructor.id)), timeout=90)
    assert job["status"] == "succeeded", job
    assert job["result"]["status"] == "pending"
    assert db.get(FaceEnrollment, job["result"]["face_id"]).reviewed_by is None


async def test_the_stale_photo_sweep_spares_photos_waiting_for_review(
    client, worker, student, admin, make_user, auth_for, db
):
    from datetime import UTC, datetime, timedelta

    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    waiting = FacePhoto(
        purpose="enroll", user_id=student.id, size_bytes=3, data=b"abc", created_at=two_days_ago
    )
    orphan = FacePhoto(
        purpose="check_in", user_id=student.id, size_bytes=3, data=b"xyz", created_at=two_days_ago
    )
    db.add_all([waiting, orphan])
    db.flush()
    db.add(
        FaceEnrollment(
            user_id=student.id,
            encoding=bytes(1024),
            model="dlib_face_recognition_resnet_model_v1",
            face_px=200,
            detector_score=2.0,
            photo_id=waiting.id,
        )
    )
    db.commit()
    other = make_user("student")
    h = auth_for(admin)
    job = await wait_for_job(
        client, await submit_photo(client, f"/v1/users/{other.id}/faces", h, photo("biden.jpg")), h
    )
    assert job["status"] == "succeeded", job
    assert [p.id for p in db.scalars(select(FacePhoto))] == [waiting.id]
