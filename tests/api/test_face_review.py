"""Face enrollments are vouched for, over HTTP: who may approve or reject a student's
enrollment and see its photo, what a decision does, and that only approved enrollments let a
student check in. The worker's side (new enrollments' status, matching): test_face_jobs.py."""

from __future__ import annotations

from datetime import datetime

import pytest
from exam_factories import class_of
from sqlalchemy import func, select

from common.models import ClassMember, FaceEnrollment, FacePhoto, Job

JPEG = b"\xff\xd8\xff\xe0" + b"a photo of the student" * 10


def pending(db, student, *, keep: bool = False, content_type: str = "image/jpeg"):
    """A student's own enrollment as the worker leaves it: pending, its photo kept."""
    photo = FacePhoto(
        purpose="enroll",
        user_id=student.id,
        uploaded_by=student.id,
        content_type=content_type,
        size_bytes=len(JPEG),
        keep=keep,
        data=JPEG,
    )
    db.add(photo)
    db.flush()
    row = FaceEnrollment(
        user_id=student.id,
        encoding=bytes(range(256)) * 4,
        model="dlib_face_recognition_resnet_model_v1",
        face_px=240,
        detector_score=1.8,
        photo_id=photo.id,
    )
    db.add(row)
    db.commit()
    assert row.status == "pending"  # the database's default: nothing counts unreviewed
    return row


def fresh(db, row):
    db.expire_all()
    return db.get(type(row), row.id)


def count(db, model, *where):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model).where(*where))


def url(student, face, action=""):
    return f"/v1/users/{student.id}/faces/{face.id}" + (f"/{action}" if action else "")


async def check_in(client, exam, headers):
    return await client.post(
        f"/v1/tests/{exam.id}/check-in",
        files={"file": ("me.jpg", JPEG, "image/jpeg")},
        headers=headers,
    )


async def test_a_pending_enrollment_does_not_check_in_until_approved(
    isolated, db, student, instructor, exam, auth_for
):
    queued, _, _ = await isolated()  # no worker: the check-in stays queued
    class_of(db, instructor, student)
    face = pending(db, student)
    h = auth_for(student)
    r = await check_in(queued, exam, h)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "not_enrolled" and "approval" in error["message"]
    assert error["details"] == {"pending_enrollments": 1}
    assert count(db, Job) == 0

    r = await queued.post(url(student, face, "approve"), headers=auth_for(instructor))
    assert r.status_code == 200, r.text
    assert (await check_in(queued, exam, h)).status_code == 202


async def test_approval_is_recorded_and_listed_and_the_photo_goes(
    client, db, student, instructor, auth_for
):
    class_of(db, instructor, student)
    face = pending(db, student)
    photo_id = face.photo_id
    hi = auth_for(instructor)
    r = await client.get(f"/v1/users/{student.id}/faces", headers=hi)
    assert r.status_code == 200
    (listed,) = r.json()
    assert listed["status"] == "pending" and listed["photo_kept"] is True
    assert listed["reviewed_by"] is None and listed["reviewed_at"] is None

    # The reviewer sees the photo before deciding.
    r = await client.get(url(student, face, "photo"), headers=hi)
    assert r.status_code == 200 and r.content == JPEG
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["x-content-type-options"] == "nosniff"

    r = await client.post(url(student, face, "approve"), headers=hi)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "approved" and body["reviewed_by"] == instructor.id
    assert body["photo_kept"] is False
    decided = datetime.fromisoformat(body["reviewed_at"])
    assert decided >= datetime.fromisoformat(listed["created_at"])
    assert count(db, FacePhoto, FacePhoto.id == photo_id) == 0
    r = await client.get(url(student, face, "photo"), headers=hi)
    assert r.status_code == 404 and r.json()["error"]["code"] == "photo_not_found"
    # The student sees the decision in their own listing.
    r = await client.get(f"/v1/users/{student.id}/faces", headers=auth_for(student))
    (mine,) = r.json()
    assert (mine["status"], mine["reviewed_by"]) == ("approved", instructor.id)
    assert datetime.fromisoformat(mine["reviewed_at"]) == decided


async def test_reject_drops_the_template_and_frees_the_slot(
    client, db, student, admin, auth_for, settings
):
    face = pending(db, student)
    r = await client.post(url(student, face, "reject"), headers=auth_for(admin))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.json()["reviewed_by"] == admin.id
    row = fresh(db, face)
    assert row.status == "rejected" and row.photo_id is None
    assert db.scalar(select(FaceEnrollment.encoding).filter_by(id=face.id)) is None
    assert count(db, FacePhoto) == 0
    # A rejected enrollment takes no slot: a student at the cap with it may enroll again.
    for _ in range(settings.face_max_enrollments - 1):
        pending(db, student)
    r = await client.post(
        f"/v1/users/{student.id}/faces",
        files={"file": ("me.jpg", JPEG, "image/jpeg")},
        headers=auth_for(student),
    )
    assert r.status_code == 202, r.text


async def test_a_kept_photo_stays_after_the_decision(client, db, student, admin, auth_for):
    face = pending(db, student, keep=True)  # uploaded under KEEP_FACE_PHOTOS
    h = auth_for(admin)
    assert (await client.post(url(student, face, "approve"), headers=h)).status_code == 200
    assert fresh(db, face).photo_id is not None
    r = await client.get(url(student, face, "photo"), headers=h)
    assert r.status_code == 200 and r.content == JPEG


@pytest.mark.parametrize("first", ["approve", "reject"])
@pytest.mark.parametrize("second", ["approve", "reject"])
async def test_a_decision_is_final(client, db, student, admin, instructor, auth_for, first, second):
    class_of(db, instructor, student)
    face = pending(db, student)
    assert (
        await client.post(url(student, face, first), headers=auth_for(admin))
    ).status_code == 200
    r = await client.post(url(student, face, second), headers=auth_for(instructor))
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "already_decided"
    assert error["details"]["status"] == {"approve": "approved", "reject": "rejected"}[first]
    assert error["details"]["reviewed_by"] == admin.id
    assert fresh(db, face).reviewed_by == admin.id


async def test_who_may_review(client, db, make_user, student, instructor, admin, auth_for):
    classmate, outsider_student = make_user("student"), make_user("student")
    class_of(db, instructor, student, classmate)
    other_instructor = make_user("instructor")
    class_of(db, other_instructor, outsider_student)
    face = pending(db, student)

    # The student themself, and another student: no review scope.
    for who in (student, classmate):
        for action in ("approve", "reject"):
            r = await client.post(url(student, face, action), headers=auth_for(who))
            assert r.status_code == 403, (who.username, r.text)
        assert (
            await client.get(url(student, face, "photo"), headers=auth_for(who))
        ).status_code == 403
    # An instructor who does not teach the student: 403, and they cannot list or enroll either.
    h = auth_for(other_instructor)
    for method, path in [
        ("POST", url(student, face, "approve")),
        ("POST", url(student, face, "reject")),
        ("GET", url(student, face, "photo")),
        ("GET", f"/v1/users/{student.id}/faces"),
    ]:
        r = await client.request(method, path, headers=h)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_your_student"
    r = await client.post(
        f"/v1/users/{student.id}/faces",
        files={"file": ("me.jpg", JPEG, "image/jpeg")},
        headers=h,
    )
    assert r.status_code == 403 and count(db, FacePhoto) == 1
    # The face through another student's path is not found, even for its reviewer.
    r = await client.post(url(classmate, face, "approve"), headers=auth_for(instructor))
    assert r.status_code == 404
    # An instructor's id is not a student they can see.
    r = await client.get(f"/v1/users/{other_instructor.id}/faces", headers=auth_for(instructor))
    assert r.status_code == 404
    assert fresh(db, face).status == "pending"
    # An admin reviews any student.
    assert (
        await client.get(url(student, face, "photo"), headers=auth_for(admin))
    ).status_code == 200


async def test_a_demoted_instructor_no_longer_reviews(client, db, student, instructor, auth_for):
    class_of(db, instructor, student)
    face = pending(db, student)
    h = auth_for(instructor)
    instructor.role = "student"
    db.commit()
    r = await client.post(url(student, face, "approve"), headers=h)
    assert r.status_code == 403
    assert fresh(db, face).status == "pending"


async def test_removed_from_the_class_no_longer_reviewed_by_its_instructor(
    client, db, student, instructor, auth_for
):
    group = class_of(db, instructor, student)
    face = pending(db, student)
    db.query(ClassMember).filter_by(class_id=group.id).delete()
    db.commit()
    r = await client.post(url(student, face, "approve"), headers=auth_for(instructor))
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_student"


async def test_the_photo_is_served_as_an_image_only(client, db, student, admin, auth_for):
    face = pending(db, student, content_type="text/html")
    r = await client.get(url(student, face, "photo"), headers=auth_for(admin))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in r.headers["content-security-policy"]


async def test_unknown_enrollment_and_bad_ids(client, student, admin, auth_for):
    h = auth_for(admin)
    r = await client.post(f"/v1/users/{student.id}/faces/424242/approve", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "face_not_found"
    r = await client.post(f"/v1/users/{student.id}/faces/0/approve", headers=h)
    assert r.status_code == 422
    r = await client.post("/v1/users/424242/faces/1/reject", headers=h)
    assert r.status_code == 404


async def test_pending_reviews_lists_what_waits_for_each_reviewer(
    client, db, make_user, instructor, admin, auth_for
):
    mine, theirs, unassigned = make_user("student"), make_user("student"), make_user("student")
    class_of(db, instructor, mine)
    class_of(db, make_user("instructor"), theirs)
    waiting = pending(db, mine)
    decided = pending(db, mine)
    other = pending(db, theirs)
    loose = pending(db, unassigned)
    assert (
        await client.post(url(mine, decided, "approve"), headers=auth_for(admin))
    ).status_code == 200

    r = await client.get("/v1/faces/pending", headers=auth_for(instructor))
    assert r.status_code == 200 and r.headers["x-total-count"] == "1"
    assert [(f["id"], f["user_id"], f["status"]) for f in r.json()] == [
        (waiting.id, mine.id, "pending")
    ]
    r = await client.get("/v1/faces/pending", headers=auth_for(admin))
    assert [f["id"] for f in r.json()] == [waiting.id, other.id, loose.id]
    r = await client.get("/v1/faces/pending", headers=auth_for(mine))
    assert r.status_code == 403
