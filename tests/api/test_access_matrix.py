"""Every route × every role, against a table of expected statuses.

A new route fails `test_every_route_has_an_access_rule` until it is added to ACCESS, so no route
can appear without someone deciding who may call it. Requests carry no body: a caller who passes
the access rule gets 422 (or the route's own answer), one who does not gets 401/403/404.
"""

from __future__ import annotations

import uuid

import pytest

ROLES = ("anonymous", "student", "instructor", "admin")

# (method, path template): statuses for anonymous, student, instructor, admin.
# Path placeholders: {user_id} = the student's own id, {task_id} = an unknown task id.
ACCESS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("POST", "/v1/auth/login"): (422, 422, 422, 422),
    ("POST", "/v1/auth/refresh"): (422, 422, 422, 422),
    ("POST", "/v1/auth/logout"): (401, 204, 204, 204),
    ("GET", "/v1/users"): (401, 403, 200, 200),
    ("POST", "/v1/users"): (401, 403, 403, 422),
    ("GET", "/v1/users/me"): (401, 200, 200, 200),
    ("GET", "/v1/users/{user_id}"): (401, 200, 200, 200),
    ("PUT", "/v1/users/{user_id}"): (401, 422, 422, 422),
    ("DELETE", "/v1/users/{user_id}"): (401, 403, 403, 204),
    ("GET", "/v1/tasks"): (401, 200, 200, 200),
    ("GET", "/v1/tasks/{task_id}"): (401, 404, 404, 404),
    ("POST", "/v1/tasks/{task_id}/cancel"): (401, 404, 404, 404),
    ("POST", "/v1/tasks/diagnostics/echo"): (401, 403, 403, 422),
    ("GET", "/health"): (200, 200, 200, 200),
    ("GET", "/health/live"): (200, 200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200, 200),
    # Attendance and faces. {test_id}: a published test of another instructor, open to every
    # student; {attendance_id}: the student's record for it; {face_id}: the student's enrollment.
    ("GET", "/v1/attendance"): (401, 200, 200, 200),
    ("POST", "/v1/attendance"): (401, 403, 422, 422),
    ("GET", "/v1/attendance/{attendance_id}"): (401, 200, 404, 200),
    ("PUT", "/v1/attendance/{attendance_id}"): (401, 403, 422, 422),
    ("DELETE", "/v1/attendance/{attendance_id}"): (401, 403, 404, 204),
    ("POST", "/v1/users/{user_id}/faces"): (401, 422, 403, 422),
    ("GET", "/v1/users/{user_id}/faces"): (401, 200, 403, 200),
    ("DELETE", "/v1/users/{user_id}/faces"): (401, 204, 403, 204),
    ("DELETE", "/v1/users/{user_id}/faces/{face_id}"): (401, 204, 403, 204),
    ("GET", "/v1/faces/pending"): (401, 403, 200, 200),
    # {face_id} is already approved: an admin passes the access rule and meets the conflict.
    ("POST", "/v1/users/{user_id}/faces/{face_id}/approve"): (401, 403, 403, 409),
    ("POST", "/v1/users/{user_id}/faces/{face_id}/reject"): (401, 403, 403, 409),
    ("GET", "/v1/users/{user_id}/faces/{face_id}/photo"): (401, 403, 403, 404),
    ("POST", "/v1/tests/{test_id}/check-in"): (401, 422, 403, 409),
    ("POST", "/v1/tests/{test_id}/attendance/photo"): (401, 403, 404, 422),
    # Tests, classes, submissions, grading. {test_id}: a published test of another instructor,
    # open to every student (2 attempts); {submission_id}: the student's submission to it;
    # {class_id}: a class of that instructor.
    ("GET", "/v1/tests"): (401, 200, 200, 200),
    ("POST", "/v1/tests"): (401, 403, 422, 422),
    ("GET", "/v1/tests/{test_id}"): (401, 200, 404, 200),
    ("PUT", "/v1/tests/{test_id}"): (401, 403, 422, 422),
    ("DELETE", "/v1/tests/{test_id}"): (401, 403, 404, 204),
    ("POST", "/v1/tests/{test_id}/attempts"): (401, 201, 403, 201),
    ("POST", "/v1/tests/{test_id}/submit"): (401, 422, 403, 422),
    ("GET", "/v1/tests/{test_id}/submissions"): (401, 200, 404, 200),
    ("POST", "/v1/tests/{test_id}/regrade"): (401, 403, 404, 202),
    # Access is decided before the body is read: another instructor's test is 404, not a 422
    # for the missing file.
    ("POST", "/v1/tests/{test_id}/submissions/import"): (401, 403, 404, 422),
    ("GET", "/v1/tests/{test_id}/results.csv"): (401, 403, 404, 200),
    ("GET", "/v1/tests/{test_id}/stats"): (401, 403, 404, 200),
    ("GET", "/v1/submissions/{submission_id}"): (401, 200, 404, 200),
    ("GET", "/v1/classes"): (401, 403, 200, 200),
    ("POST", "/v1/classes"): (401, 403, 422, 422),
    ("GET", "/v1/classes/{class_id}"): (401, 403, 404, 200),
    ("PUT", "/v1/classes/{class_id}"): (401, 403, 422, 422),
    ("DELETE", "/v1/classes/{class_id}"): (401, 403, 404, 204),
    # Files. {filename}: the student's own file, still pending its scan (downloads are 409),
    # attached to a test of another instructor. No body: the upload answers 415.
    ("POST", "/v1/files/upload"): (401, 415, 415, 415),
    ("GET", "/v1/files"): (401, 200, 200, 200),
    ("GET", "/v1/files/{filename}"): (401, 409, 404, 409),
    ("GET", "/v1/files/{filename}/info"): (401, 200, 404, 200),
    ("DELETE", "/v1/files/{filename}"): (401, 204, 404, 204),
}


def app_routes(app) -> set[tuple[str, str]]:
    """Every operation the app serves, read from its OpenAPI schema (the public contract)."""
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_every_route_has_an_access_rule(app):
    missing = app_routes(app) - set(ACCESS)
    assert not missing, f"routes without an entry in ACCESS: {sorted(missing)}"
    stale = set(ACCESS) - app_routes(app)
    assert not stale, f"ACCESS lists routes that do not exist: {sorted(stale)}"


ATTENDANCE_TEST_PATHS = {"/v1/tests/{test_id}/check-in", "/v1/tests/{test_id}/attendance/photo"}


def _attendance_fill(db, make_user, student) -> dict[str, int]:
    from common.models import Attendance, Exam, FaceEnrollment

    other = make_user("instructor")
    test = Exam(owner_id=other.id, title="Someone else's test")
    db.add(test)
    db.flush()
    record = Attendance(test_id=test.id, user_id=student.id, status="present")
    face = FaceEnrollment(
        user_id=student.id,
        encoding=bytes(1024),
        model="m",
        face_px=100,
        detector_score=1.0,
        status="approved",
    )
    db.add_all([record, face])
    db.commit()
    return {"test_id": test.id, "attendance_id": record.id, "face_id": face.id}


def _tests_fill(db, make_user, student) -> dict[str, int]:
    from datetime import UTC, datetime

    from common.models import Attempt, Exam, Option, Question, SchoolClass, Submission

    other = make_user("instructor")
    test = Exam(
        owner_id=other.id,
        title="Someone else's test",
        attempts_allowed=2,
        questions=[
            Question(
                position=0,
                text="Q",
                options=[
                    Option(position=0, text="A", is_correct=True),
                    Option(position=1, text="B", is_correct=False),
                ],
            )
        ],
    )
    group = SchoolClass(owner_id=other.id, name="Their class")
    db.add_all([test, group])
    db.flush()
    now = datetime.now(UTC)
    attempt = Attempt(test_id=test.id, user_id=student.id, number=1, started_at=now)
    db.add(attempt)
    db.flush()
    submission = Submission(
        test_id=test.id,
        user_id=student.id,
        attempt_id=attempt.id,
        attempt=1,
        answers={},
        score=0.0,
        max_score=1.0,
        key_version=1,
        details=[],
        graded_at=now,
    )
    attempt.submitted_at = now
    db.add(submission)
    db.commit()
    return {"test_id": test.id, "class_id": group.id, "submission_id": submission.id}


def _files_fill(db, make_user, student) -> dict[str, str]:
    from common.models import Exam, StoredFile

    other = make_user("instructor")
    test = Exam(owner_id=other.id, title="Someone else's test")
    db.add(test)
    db.flush()
    key = uuid.uuid4().hex
    db.add(
        StoredFile(
            key=key,
            owner_id=student.id,
            test_id=test.id,
            original_name="notes.txt",
            size=1,
            content_type="text/plain",
            sha256="0" * 64,
        )
    )
    db.commit()
    return {"filename": key}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
async def test_route_access(request, client, make_user, auth_for, method, path, role):
    if path == "/health":
        request.getfixturevalue("worker")  # readiness includes "a worker answers"
    student = make_user("student")
    fill = {"user_id": student.id, "task_id": uuid.uuid4()}
    if "{attendance_id}" in path or "{face_id}" in path or path in ATTENDANCE_TEST_PATHS:
        extra = _attendance_fill(request.getfixturevalue("db"), make_user, student)
        fill = {**extra, **fill}
    elif path.startswith(("/v1/tests/{test_id}", "/v1/classes/", "/v1/submissions/")):
        fill = {**_tests_fill(request.getfixturevalue("db"), make_user, student), **fill}
    elif path.startswith("/v1/files/{filename}"):
        fill = {**_files_fill(request.getfixturevalue("db"), make_user, student), **fill}
    if role == "anonymous":
        headers = {}
    elif role == "student":
        headers = auth_for(student)
    else:
        headers = auth_for(make_user(role))
    expected = ACCESS[(method, path)][ROLES.index(role)]
    r = await client.request(method, path.format(**fill), headers=headers)
    assert r.status_code == expected, f"{method} {path} as {role}: {r.status_code} {r.text}"
    if r.status_code >= 400:
        assert set(r.json()["error"]) >= {"code", "message"}
