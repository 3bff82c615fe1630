"""The face routes' API side, without a worker: access, upload limits, what is stored and
enqueued, listing and deleting enrollments. The face work itself: tests/worker/test_face_jobs.py.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from helpers import ROOT
from sqlalchemy import func, select

from common.models import FaceEnrollment, FacePhoto, Job
from common.models.tests import Exam

JPEG = b"\xff\xd8\xff\xe0" + b"not really a photo" * 10


def count(db, model, **where):
    db.expire_all()
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return db.scalar(query)


def enrollment(db, user, **extra):
    """An enrollment row as the worker writes it; approved unless `status` says otherwise."""
    row = FaceEnrollment(
        user_id=user.id,
        encoding=bytes(range(256)) * 4,
        model="dlib_face_recognition_resnet_model_v1",
        face_px=240,
        detector_score=1.8,
        **{"status": "approved", **extra},
    )
    db.add(row)
    db.commit()
    return row


def stored_photo(db, user, purpose="enroll"):
    photo = FacePhoto(purpose=purpose, user_id=user.id, size_bytes=3, data=b"abc")
    db.add(photo)
    db.commit()
    return photo


@pytest.fixture
async def queued(isolated):
    """An API whose jobs stay queued: no worker listens on its Redis prefix."""
    client, _, _ = await isolated(face_upload_max_bytes=4096)
    return client


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_api_never_imports_the_face_stack():
    """Every import the API's code can reach, followed through our own modules (also imports
    inside functions): no worker code, no dlib, no face_recognition."""
    seen: set[str] = set()
    third_party: set[str] = set()
    todo = ["api.main"]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for module in found:
                top = module.split(".")[0]
                if top in ("api", "common", "worker"):
                    todo.append(module)
                else:
                    third_party.add(top)
    assert "api.routers.faces" in seen and "api.services.faces" in seen
    assert not {m for m in seen if m.split(".")[0] == "worker"}
    assert not third_party & {"dlib", "face_recognition", "face_recognition_models"}


async def test_enroll_stores_the_photo_and_enqueues_ids_only(queued, student, auth_for, db):
    r = await queued.post(
        f"/v1/users/{student.id}/faces",
        files={"file": ("me.jpg", JPEG, "image/jpeg")},
        headers=auth_for(student),
    )
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert r.headers["location"] == f"/v1/tasks/{task_id}"
    job = db.get(Job, uuid.UUID(task_id))
    assert job.kind == "faces.enroll" and job.status == "queued" and job.owner_id == student.id
    photo = db.get(FacePhoto, job.params["photo_id"])
    assert job.params == {"photo_id": photo.id, "user_id": student.id}
    assert photo.data == JPEG and photo.size_bytes == len(JPEG)
    assert photo.purpose == "enroll" and photo.user_id == student.id
    assert photo.content_type == "image/jpeg" and photo.uploaded_by == student.id
    # The job is visible to its owner like any other.
    r = await queued.get(f"/v1/tasks/{task_id}", headers=auth_for(student))
    assert r.json()["status"] == "queued"


async def test_admin_enrolls_a_student_but_not_an_instructor(
    queued, admin, student, instructor, auth_for
):
    h = auth_for(admin)
    files = {"file": ("me.jpg", JPEG, "image/jpeg")}
    r = await queued.post(f"/v1/users/{student.id}/faces", files=files, headers=h)
    assert r.status_code == 202, r.text
    r = await queued.post(f"/v1/users/{instructor.id}/faces", files=files, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_a_student"


async def test_students_manage_only_their_own_faces(client, make_user, auth_for, db):
    alice, bob = make_user("student"), make_user("student")
    face = enrollment(db, bob)
    h = auth_for(alice)
    files = {"file": ("me.jpg", JPEG, "image/jpeg")}
    r = await client.post(f"/v1/users/{bob.id}/faces", files=files, headers=h)
    assert r.status_code == 404
    assert (await client.get(f"/v1/users/{bob.id}/faces", headers=h)).status_code == 404
    assert (await client.delete(f"/v1/users/{bob.id}/faces", headers=h)).status_code == 404
    r = await client.delete(f"/v1/users/{bob.id}/faces/{face.id}", headers=h)
    assert r.status_code == 404
    # Bob's face through Alice's path is not found either.
    r = await client.delete(f"/v1/users/{alice.id}/faces/{face.id}", headers=h)
    assert r.status_code == 404
    assert count(db, FaceEnrollment) == 1
    assert count(db, FacePhoto) == 0


async def test_upload_limit_from_content_length(queued, student, auth_for, db):
    r = await queued.post(
        f"/v1/users/{student.id}/faces",
        files={"file": ("big.jpg", b"\xff" * 200_000, "image/jpeg")},
        headers=auth_for(student),
    )
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "payload_too_large" and error["details"] == {"max_bytes": 4096}
    assert count(db, FacePhoto) == 0 and count(db, Job) == 0


async def test_upload_limit_holds_while_streaming(queued, student, auth_for, db):
    """No Content-Length (chunked): the body is refused once the file passes the limit."""
    boundary = "b0undary"
    sent = 0

    async def body():
        nonlocal sent
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        yield head.encode()
        for _ in range(1000):  # would be 1 MB; the limit is 4 KB
            sent += 1024
            yield b"\xff" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await queued.post(
        f"/v1/users/{student.id}/faces",
        content=body(),
        headers={**auth_for(student), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413, r.text
    assert sent < 100 * 1024  # stopped reading long before the end
    assert count(db, FacePhoto) == 0 and count(db, Job) == 0


async def test_a_file_at_the_limit_passes(queued, student, auth_for):
    r = await queued.post(
        f"/v1/users/{student.id}/faces",
        files={"file": ("x.jpg", b"\xff" * 4096, "image/jpeg")},
        headers=auth_for(student),
    )
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({}, 422, "validation_error"),
        ({"json": {"file": "abc"}}, 415, "multipart_required"),
        ({"content": b"abc", "headers": {"Content-Type": "image/jpeg"}}, 415, None),
        ({"data": {"file": "not a file"}, "files": {"other": ("a", b"b")}}, 422, None),
        ({"files": {"photo": ("a.jpg", JPEG, "image/jpeg")}}, 422, "validation_error"),
        (
            {"files": [("file", ("a.jpg", JPEG, "image/jpeg")), ("file", ("b.jpg", JPEG))]},
            422,
            None,
        ),
        (
            {
                "content": b"garbage without boundaries",
                "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "malformed_multipart",
        ),
        (
            {"content": b"--xyz\r\n", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            "malformed_multipart",
        ),
        (
            {
                "content": b'--xyz\r\nContent-Disposition: form-data; name="file"; '
                b'filename="a.jpg"\r\n\r\n' + JPEG[:20],
                "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "malformed_multipart",
        ),
    ],
)
async def test_malformed_uploads_are_4xx(client, student, auth_for, db, kwargs, status, code):
    headers = {**auth_for(student), **kwargs.pop("headers", {})}
    r = await client.post(f"/v1/users/{student.id}/faces", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert count(db, FacePhoto) == 0 and count(db, Job) == 0


async def test_enrollments_are_capped(client, student, auth_for, db, settings):
    for _ in range(settings.face_max_enrollments):
        enrollment(db, student)
    r = await client.post(
        f"/v1/users/{student.id}/faces",
        files={"file": ("me.jpg", JPEG, "image/jpeg")},
        headers=auth_for(student),
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_enrollments"


async def test_list_never_returns_encodings(client, student, admin, auth_for, db):
    faces = [enrollment(db, student), enrollment(db, student)]
    for headers in (auth_for(student), auth_for(admin)):
        r = await client.get(f"/v1/users/{student.id}/faces", headers=headers)
        assert r.status_code == 200
        assert r.headers["x-total-count"] == "2"
        body = r.json()
        assert [f["id"] for f in body] == [f.id for f in faces]
        assert set(body[0]) == {
            "id",
            "user_id",
            "model",
            "quality",
            "status",
            "reviewed_by",
            "reviewed_at",
            "photo_kept",
            "created_at",
        }
        assert body[0]["quality"] == {"face_px": 240, "detector_score": 1.8}
        assert body[0]["photo_kept"] is False
        assert "encoding" not in r.text


async def test_delete_one_enrollment_and_its_kept_photo(client, student, auth_for, db):
    photo = stored_photo(db, student)
    keep_id = enrollment(db, student, photo_id=photo.id).id
    other_id = enrollment(db, student).id
    h = auth_for(student)
    r = await client.get(f"/v1/users/{student.id}/faces", headers=h)
    assert [f["photo_kept"] for f in r.json()] == [True, False]
    r = await client.delete(f"/v1/users/{student.id}/faces/{keep_id}", headers=h)
    assert r.status_code == 204
    assert count(db, FaceEnrollment, id=keep_id) == 0
    assert count(db, FacePhoto) == 0
    assert count(db, FaceEnrollment, id=other_id) == 1
    r = await client.delete(f"/v1/users/{student.id}/faces/{keep_id}", headers=h)
    assert r.status_code == 404


async def test_delete_all_face_data(client, make_user, admin, auth_for, db):
    student, bystander = make_user("student"), make_user("student")
    for _ in range(3):
        enrollment(db, student)
    stored_photo(db, student)
    stored_photo(db, student, purpose="check_in")
    enrollment(db, bystander)
    stored_photo(db, bystander)
    r = await client.delete(f"/v1/users/{student.id}/faces", headers=auth_for(admin))
    assert r.status_code == 204
    assert count(db, FaceEnrollment, user_id=student.id) == 0
    assert count(db, FacePhoto, user_id=student.id) == 0
    assert count(db, FaceEnrollment, user_id=bystander.id) == 1
    assert count(db, FacePhoto, user_id=bystander.id) == 1


async def test_deleting_a_user_deletes_their_face_data(client, student, admin, auth_for, db):
    enrollment(db, student)
    enrollment(db, student, photo_id=stored_photo(db, student).id)
    stored_photo(db, student, purpose="check_in")
    r = await client.delete(f"/v1/users/{student.id}", headers=auth_for(admin))
    assert r.status_code == 204
    assert count(db, FaceEnrollment) == 0
    assert count(db, FacePhoto) == 0


async def test_check_in_without_enrollment_is_409_at_once(client, student, exam, auth_for, db):
    r = await client.post(
        f"/v1/tests/{exam.id}/check-in",
        files={"file": ("me.jpg", JPEG, "image/jpeg")},
        headers=auth_for(student),
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_enrolled"
    assert count(db, FacePhoto) == 0 and count(db, Job) == 0


async def test_check_in_enqueues(queued, student, exam, auth_for, db):
    enrollment(db, student)
    r = await queued.post(
        f"/v1/tests/{exam.id}/check-in",
        files={"file": ("me.png", JPEG, "image/png")},
        headers=auth_for(student),
    )
    assert r.status_code == 202, r.text
    job = db.get(Job, uuid.UUID(r.json()["task_id"]))
    assert job.kind == "faces.check_in"
    photo = db.get(FacePhoto, job.params["photo_id"])
    assert job.params == {"photo_id": photo.id, "user_id": student.id, "test_id": exam.id}
    assert photo.purpose == "check_in" and photo.test_id == exam.id


async def test_check_in_and_class_photo_need_a_real_test(client, student, admin, auth_for, db):
    enrollment(db, student)
    files = {"file": ("me.jpg", JPEG, "image/jpeg")}
    r = await client.post("/v1/tests/424242/check-in", files=files, headers=auth_for(student))
    assert r.status_code == 404
    r = await client.post("/v1/tests/424242/attendance/photo", files=files, headers=auth_for(admin))
    assert r.status_code == 404
    r = await client.post("/v1/tests/0/check-in", files=files, headers=auth_for(student))
    assert r.status_code == 422


async def test_class_photo_by_the_tests_instructor_only(
    queued, exam, instructor, make_user, auth_for, db
):
    files = {"file": ("class.jpg", JPEG, "image/jpeg")}
    other = make_user("instructor")
    r = await queued.post(
        f"/v1/tests/{exam.id}/attendance/photo", files=files, headers=auth_for(other)
    )
    assert r.status_code == 404  # another instructor's test does not exist for them
    r = await queued.post(
        f"/v1/tests/{exam.id}/attendance/photo", files=files, headers=auth_for(instructor)
    )
    assert r.status_code == 202, r.text
    job = db.get(Job, uuid.UUID(r.json()["task_id"]))
    assert job.kind == "faces.class_photo" and job.owner_id == instructor.id
    photo = db.get(FacePhoto, job.params["photo_id"])
    assert job.params == {"photo_id": photo.id, "test_id": exam.id}
    assert photo.purpose == "class_photo" and photo.user_id is None


async def test_check_in_only_to_a_test_the_student_may_take(
    client, make_user, instructor, auth_for, db
):
    from common.models import ClassMember, ExamClass, SchoolClass

    member, outsider = make_user("student"), make_user("student")
    for student in (member, outsider):
        enrollment(db, student)
    assigned = Exam(owner_id=instructor.id, title="For group A")
    draft = Exam(owner_id=instructor.id, title="Not published", published=False)
    group = SchoolClass(owner_id=instructor.id, name="Group A")
    db.add_all([assigned, draft, group])
    db.flush()
    db.add_all(
        [
            ClassMember(class_id=group.id, user_id=member.id),
            ExamClass(test_id=assigned.id, class_id=group.id),
        ]
    )
    db.commit()
    files = {"file": ("me.jpg", JPEG, "image/jpeg")}
    for student, test, status in [
        (outsider, assigned, 404),
        (outsider, draft, 404),
        (member, draft, 404),
    ]:
        r = await client.post(
            f"/v1/tests/{test.id}/check-in", files=files, headers=auth_for(student)
        )
        assert r.status_code == status, (student.username, test.title, r.text)
    assert count(db, FacePhoto) == 0 and count(db, Job) == 0
