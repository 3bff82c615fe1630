"""Attendance records by hand: CRUD, who sees what, filters, one record per student and test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from exam_factories import record_attendance as record
from sqlalchemy import func, select, update

from common.models import Attendance
from common.models.tests import Exam


@pytest.fixture
def make_test(db):
    def make(owner, title="Quiz"):
        test = Exam(owner_id=owner.id, title=title)
        db.add(test)
        db.commit()
        return test

    return make


async def test_instructor_records_reads_updates_and_deletes(
    client, instructor, student, auth_for, make_test, db
):
    h = auth_for(instructor)
    test = make_test(instructor)
    created = await record(client, h, test, student, "late")
    assert created["test_id"] == test.id and created["user_id"] == student.id
    assert created["status"] == "late" and created["method"] == "manual"
    assert created["recorded_by"] == instructor.id and created["distance"] is None
    assert created["timestamp"] == created["updated_at"]

    r = await client.get(f"/v1/attendance/{created['id']}", headers=h)
    assert r.status_code == 200 and r.json() == created

    r = await client.put(f"/v1/attendance/{created['id']}", json={"status": "excused"}, headers=h)
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["status"] == "excused"
    assert changed["timestamp"] == created["timestamp"]
    assert changed["updated_at"] > created["updated_at"]

    r = await client.delete(f"/v1/attendance/{created['id']}", headers=h)
    assert r.status_code == 204
    assert (await client.get(f"/v1/attendance/{created['id']}", headers=h)).status_code == 404
    assert db.scalar(select(func.count()).select_from(Attendance)) == 0


async def test_one_record_per_student_and_test(client, instructor, student, auth_for, make_test):
    h = auth_for(instructor)
    test = make_test(instructor)
    first = await record(client, h, test, student)
    r = await client.post(
        "/v1/attendance",
        json={"test_id": test.id, "user_id": student.id, "status": "absent"},
        headers=h,
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "attendance_exists"
    assert r.json()["error"]["details"] == {"id": first["id"]}


async def test_the_database_refuses_a_duplicate(db, instructor, student, make_test):
    # The constraint holds even for writers that skip the service's check.
    from sqlalchemy.exc import IntegrityError

    test = make_test(instructor)
    db.add(Attendance(test_id=test.id, user_id=student.id, status="present"))
    db.commit()
    db.add(Attendance(test_id=test.id, user_id=student.id, status="absent"))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"status": "sleeping"}, "status"),
        ({"status": "PRESENT"}, "status"),
        ({"status": None}, "status"),
        ({"test_id": 0}, "test_id"),
        ({"test_id": 2**31}, "test_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": 10**30}, "user_id"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_create_validation(client, instructor, student, auth_for, make_test, body, path):
    test = make_test(instructor)
    payload = {"test_id": test.id, "user_id": student.id, "status": "present", **body}
    r = await client.post("/v1/attendance", json=payload, headers=auth_for(instructor))
    assert r.status_code == 422, r.text
    assert path in {d["path"] for d in r.json()["error"]["details"]}


async def test_create_refers_to_a_real_test_and_student(
    client, instructor, student, admin, auth_for, make_test
):
    h = auth_for(instructor)
    test = make_test(instructor)
    for body, code in [
        ({"test_id": 999_999, "user_id": student.id}, "test_not_found"),
        ({"test_id": test.id, "user_id": 999_999}, "student_not_found"),
        ({"test_id": test.id, "user_id": admin.id}, "student_not_found"),
    ]:
        r = await client.post("/v1/attendance", json={**body, "status": "present"}, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == code


async def test_only_the_tests_instructor_or_an_admin_writes(
    client, instructor, make_user, student, admin, auth_for, make_test
):
    other = make_user("instructor")
    test = make_test(instructor)
    body = {"test_id": test.id, "user_id": student.id, "status": "present"}
    # Another instructor's test does not exist for them.
    r = await client.post("/v1/attendance", json=body, headers=auth_for(other))
    assert r.status_code == 422 and r.json()["error"]["code"] == "test_not_found"
    r = await client.post("/v1/attendance", json=body, headers=auth_for(student))
    assert r.status_code == 403
    created = await record(client, auth_for(admin), test, student)
    assert created["recorded_by"] == admin.id
    # Another instructor cannot see, change or delete it: 404 as if it did not exist.
    oh = auth_for(other)
    assert (await client.get(f"/v1/attendance/{created['id']}", headers=oh)).status_code == 404
    r = await client.put(f"/v1/attendance/{created['id']}", json={"status": "late"}, headers=oh)
    assert r.status_code == 404
    assert (await client.delete(f"/v1/attendance/{created['id']}", headers=oh)).status_code == 404
    # The student reads their own record but cannot change it.
    sh = auth_for(student)
    assert (await client.get(f"/v1/attendance/{created['id']}", headers=sh)).status_code == 200
    r = await client.put(f"/v1/attendance/{created['id']}", json={"status": "late"}, headers=sh)
    assert r.status_code == 403


async def test_visibility_of_lists(client, instructor, make_user, admin, auth_for, make_test):
    other = make_user("instructor")
    alice, bob = make_user("student"), make_user("student")
    mine, theirs = make_test(instructor), make_test(other)
    ah = auth_for(admin)
    for test in (mine, theirs):
        for student in (alice, bob):
            await record(client, ah, test, student)

    def pairs(r):
        return {(a["test_id"], a["user_id"]) for a in r.json()}

    r = await client.get("/v1/attendance", headers=auth_for(alice))
    assert pairs(r) == {(mine.id, alice.id), (theirs.id, alice.id)}
    assert r.headers["x-total-count"] == "2"
    # A student filtering for someone else gets nothing, not their records.
    r = await client.get("/v1/attendance", params={"user_id": bob.id}, headers=auth_for(alice))
    assert r.json() == [] and r.headers["x-total-count"] == "0"
    r = await client.get("/v1/attendance", headers=auth_for(instructor))
    assert pairs(r) == {(mine.id, alice.id), (mine.id, bob.id)}
    r = await client.get("/v1/attendance", headers=ah)
    assert r.headers["x-total-count"] == "4"


async def test_filters_and_pagination(client, instructor, make_user, auth_for, make_test, db):
    h = auth_for(instructor)
    t1, t2 = make_test(instructor), make_test(instructor)
    students = [make_user("student") for _ in range(3)]
    created = []
    for test in (t1, t2):
        for student, status in zip(students, ("present", "late", "absent"), strict=True):
            created.append(await record(client, h, test, student, status))
    # Spread the records over time: record i was taken i hours ago.
    now = datetime.now(UTC)
    for i, row in enumerate(created):
        db.execute(
            update(Attendance)
            .where(Attendance.id == row["id"])
            .values(created_at=now - timedelta(hours=i))
        )
    db.commit()

    async def get(**params):
        r = await client.get("/v1/attendance", params=params, headers=h)
        assert r.status_code == 200, r.text
        return r

    assert {a["test_id"] for a in (await get(test_id=t1.id)).json()} == {t1.id}
    r = await get(user_id=students[0].id)
    assert {a["user_id"] for a in r.json()} == {students[0].id} and len(r.json()) == 2
    r = await get(status="late")
    assert [a["status"] for a in r.json()] == ["late", "late"]
    r = await get(test_id=t2.id, status="absent")
    assert len(r.json()) == 1 and r.json()[0]["user_id"] == students[2].id
    # since is inclusive, until exclusive; oldest first.
    r = await get(since=(now - timedelta(hours=2, minutes=30)).isoformat())
    assert [a["id"] for a in r.json()] == [c["id"] for c in reversed(created[:3])]
    r = await get(until=(now - timedelta(hours=3, minutes=30)).isoformat())
    assert [a["id"] for a in r.json()] == [created[5]["id"], created[4]["id"]]
    # A time without an offset is UTC.
    naive = (now - timedelta(minutes=30)).replace(tzinfo=None).isoformat()
    assert [a["id"] for a in (await get(since=naive)).json()] == [created[0]["id"]]
    r = await get(limit=2, offset=1)
    assert r.headers["x-total-count"] == "6" and len(r.json()) == 2
    assert r.json()[0]["id"] == created[4]["id"]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "asleep"},
        {"test_id": 0},
        {"test_id": 10**20},
        {"user_id": "x"},
        {"since": "yesterday"},
        {"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
    ],
)
async def test_list_rejects_bad_filters(client, admin, auth_for, params):
    r = await client.get("/v1/attendance", params=params, headers=auth_for(admin))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"


async def test_update_makes_a_face_record_manual(
    client, instructor, student, auth_for, make_test, db
):
    test = make_test(instructor)
    row = Attendance(
        test_id=test.id,
        user_id=student.id,
        status="present",
        method="face",
        distance=0.31,
        recorded_by=student.id,
    )
    db.add(row)
    db.commit()
    h = auth_for(instructor)
    r = await client.get(f"/v1/attendance/{row.id}", headers=h)
    assert r.json()["method"] == "face" and r.json()["distance"] == pytest.approx(0.31)
    r = await client.put(f"/v1/attendance/{row.id}", json={"status": "late"}, headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "late" and r.json()["method"] == "manual"
    assert r.json()["distance"] is None and r.json()["recorded_by"] == instructor.id
    for body in ({}, {"status": "gone"}, {"status": "late", "user_id": student.id + 1000}):
        r = await client.put(f"/v1/attendance/{row.id}", json=body, headers=h)
        assert r.status_code == 422, body


async def test_put_takes_back_the_resource_get_returns(
    client, instructor, student, make_user, auth_for, make_test
):
    h = auth_for(instructor)
    test, other_test = make_test(instructor), make_test(instructor, "Other")
    created = await record(client, h, test, student, "present")
    read = (await client.get(f"/v1/attendance/{created['id']}", headers=h)).json()
    r = await client.put(
        f"/v1/attendance/{created['id']}", json={**read, "status": "late"}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "late" and r.json()["method"] == "manual"
    # Read-only fields sent back with other values are ignored: the server sets them.
    r = await client.put(
        f"/v1/attendance/{created['id']}",
        json={**read, "status": "excused", "method": "face", "distance": 0.1, "recorded_by": 1},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["method"], r.json()["distance"]) == ("manual", None)
    assert r.json()["recorded_by"] == instructor.id
    # A record never moves to another test or student.
    for field, value in (
        ("test_id", other_test.id),
        ("user_id", make_user("student").id),
        ("id", created["id"] + 1),
    ):
        r = await client.put(
            f"/v1/attendance/{created['id']}", json={**read, field: value}, headers=h
        )
        assert r.status_code == 422, (field, r.text)
        error = r.json()["error"]
        assert error["code"] == "immutable_field" and "cannot change" in error["message"]
        assert [d["path"] for d in error["details"]] == [field]
    still = (await client.get(f"/v1/attendance/{created['id']}", headers=h)).json()
    assert (still["test_id"], still["user_id"], still["status"]) == (
        test.id,
        student.id,
        "excused",
    )


async def test_unknown_and_out_of_range_ids(client, admin, auth_for):
    h = auth_for(admin)
    assert (await client.get("/v1/attendance/123456", headers=h)).status_code == 404
    assert (await client.delete("/v1/attendance/123456", headers=h)).status_code == 404
    for bad in ("0", "99999999999", "abc"):
        assert (await client.get(f"/v1/attendance/{bad}", headers=h)).status_code == 422


async def test_records_go_with_their_test_and_student(
    client, instructor, make_user, admin, auth_for, make_test, db
):
    test = make_test(instructor)
    student = make_user("student")
    await record(client, auth_for(instructor), test, student)
    r = await client.delete(f"/v1/users/{student.id}", headers=auth_for(admin))
    assert r.status_code == 204
    assert db.scalar(select(func.count()).select_from(Attendance)) == 0


async def test_only_students_who_may_take_the_test(
    client, instructor, make_user, auth_for, make_test, db
):
    from common.models import ClassMember, ExamClass, SchoolClass

    member, outsider = make_user("student"), make_user("student")
    test = make_test(instructor)
    group = SchoolClass(owner_id=instructor.id, name="Group A")
    db.add(group)
    db.flush()
    db.add_all(
        [
            ClassMember(class_id=group.id, user_id=member.id),
            ExamClass(test_id=test.id, class_id=group.id),
        ]
    )
    db.commit()
    h = auth_for(instructor)
    r = await client.post(
        "/v1/attendance",
        json={"test_id": test.id, "user_id": outsider.id, "status": "present"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "student_not_eligible"
    await record(client, h, test, member)
