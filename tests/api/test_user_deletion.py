"""Deleting an account loses no one else's data, and the last active admin stays.

- A user who owns tests or classes is deleted only with `transfer_to` naming an active
  instructor or admin, who takes them over in the same transaction; otherwise 409.
- Deleting a student erases that student's own work.
- No delete, deactivation or demotion leaves zero active admins, even when two admins act on
  each other at the same moment.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from exam_factories import new_test, submit
from sqlalchemy import func, select, text

from common import models as m

RIGHT = {0: 0, 1: [0, 1], 2: 1}


async def authored(client, auth_for, owner, student, *classmates):
    """A test of `owner` assigned to a class of theirs, with `student`'s submission."""
    h = auth_for(owner)
    members = [student.id, *(c.id for c in classmates)]
    r = await client.post(
        "/v1/classes", json={"name": "Group A", "student_ids": members}, headers=h
    )
    assert r.status_code == 201, r.text
    klass = r.json()
    test = await new_test(client, h, class_ids=[klass["id"]])
    sub = await submit(client, test, auth_for(student), RIGHT)
    assert sub.status_code == 201
    return test, klass, sub.json()


def count(db, model, *where) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


async def test_deleting_an_owner_without_transfer_is_409_and_deletes_nothing(
    client, db, admin, instructor, student, auth_for
):
    test, klass, sub = await authored(client, auth_for, instructor, student)
    r = await client.delete(f"/v1/users/{instructor.id}", headers=auth_for(admin))
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "user_owns_tests"
    assert error["details"] == {"tests": 1, "classes": 1}
    assert "transfer_to" in error["message"]
    assert count(db, m.User, m.User.id == instructor.id) == 1
    assert count(db, m.Exam, m.Exam.id == test["id"]) == 1
    assert count(db, m.Submission, m.Submission.id == sub["id"]) == 1
    assert count(db, m.ClassMember, m.ClassMember.class_id == klass["id"]) == 1
    # Deactivation stays the way to remove access without losing anything.
    r = await client.put(
        f"/v1/users/{instructor.id}", json={"is_active": False}, headers=auth_for(admin)
    )
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert count(db, m.Exam, m.Exam.id == test["id"]) == 1


async def test_transfer_moves_tests_and_classes_and_keeps_every_record(
    client, db, admin, instructor, make_user, student, auth_for
):
    heir = make_user("instructor")
    hh = auth_for(heir)
    test, klass, sub = await authored(client, auth_for, instructor, student)
    url = f"/v1/tests/{test['id']}"
    assert (await client.get(url, headers=hh)).status_code == 404  # not theirs yet
    r = await client.delete(
        f"/v1/users/{instructor.id}",
        params={"transfer_to": heir.id},
        headers=auth_for(admin),
    )
    assert r.status_code == 204, r.text
    assert count(db, m.User, m.User.id == instructor.id) == 0
    owner_view = (await client.get(url, headers=hh)).json()
    assert owner_view["view"] == "owner" and owner_view["owner_id"] == heir.id
    assert owner_view["class_ids"] == [klass["id"]]
    r = await client.get(f"/v1/classes/{klass['id']}", headers=hh)
    assert r.status_code == 200 and r.json()["owner_id"] == heir.id
    assert r.json()["student_ids"] == [student.id]
    submissions = (await client.get(f"{url}/submissions", headers=hh)).json()
    assert [s["id"] for s in submissions] == [sub["id"]]
    assert (await client.get(f"{url}/results.csv", headers=hh)).status_code == 200
    # The student still sees the test and their own result.
    sh = auth_for(student)
    assert (await client.get(url, headers=sh)).status_code == 200
    assert (await client.get(f"/v1/submissions/{sub['id']}", headers=sh)).json()["score"] == 6


async def test_an_admin_may_take_the_tests_over(client, db, admin, instructor, student, auth_for):
    test, _, _ = await authored(client, auth_for, instructor, student)
    ah = auth_for(admin)
    r = await client.delete(
        f"/v1/users/{instructor.id}", params={"transfer_to": admin.id}, headers=ah
    )
    assert r.status_code == 204
    assert db.scalar(select(m.Exam.owner_id).where(m.Exam.id == test["id"])) == admin.id


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("missing", "transfer_target_not_found"),
        ("self", "transfer_target_is_user"),
        ("student", "transfer_target_not_instructor"),
        ("inactive", "transfer_target_inactive"),
    ],
)
async def test_a_bad_transfer_target_is_422_and_deletes_nothing(
    client, db, admin, instructor, student, make_user, auth_for, target, code
):
    test, _, _ = await authored(client, auth_for, instructor, student)
    if target == "missing":
        target_id = 2_000_000_000
    elif target == "self":
        target_id = instructor.id
    elif target == "student":
        target_id = student.id
    else:
        dormant = make_user("instructor")
        dormant.is_active = False
        db.commit()
        target_id = dormant.id
    r = await client.delete(
        f"/v1/users/{instructor.id}", params={"transfer_to": target_id}, headers=auth_for(admin)
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["details"][0]["path"] == "transfer_to"
    assert count(db, m.User, m.User.id == instructor.id) == 1
    assert db.scalar(select(m.Exam.owner_id).where(m.Exam.id == test["id"])) == instructor.id


async def test_a_class_name_the_heir_already_uses_is_409(
    client, db, admin, instructor, student, make_user, auth_for
):
    heir = make_user("instructor")
    await authored(client, auth_for, instructor, student)
    r = await client.post("/v1/classes", json={"name": "Group A"}, headers=auth_for(heir))
    assert r.status_code == 201
    r = await client.delete(
        f"/v1/users/{instructor.id}", params={"transfer_to": heir.id}, headers=auth_for(admin)
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "class_name_taken"
    assert r.json()["error"]["details"] == {"names": ["Group A"]}
    assert count(db, m.Exam, m.Exam.owner_id == instructor.id) == 1  # nothing moved


async def test_deleting_a_student_erases_their_own_work_only(
    client, db, admin, instructor, student, make_user, auth_for
):
    classmate = make_user("student")
    test, klass, _ = await authored(client, auth_for, instructor, student, classmate)
    other = await submit(client, test, auth_for(classmate), RIGHT)
    assert other.status_code == 201
    r = await client.delete(f"/v1/users/{student.id}", headers=auth_for(admin))
    assert r.status_code == 204
    assert count(db, m.Submission, m.Submission.user_id == student.id) == 0
    assert count(db, m.Attempt, m.Attempt.user_id == student.id) == 0
    assert count(db, m.ClassMember, m.ClassMember.user_id == student.id) == 0
    assert count(db, m.Submission, m.Submission.id == other.json()["id"]) == 1
    assert count(db, m.Exam, m.Exam.id == test["id"]) == 1
    assert count(db, m.SchoolClass, m.SchoolClass.id == klass["id"]) == 1


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    client, admin, make_user, auth_for
):
    h = auth_for(admin)
    url = f"/v1/users/{admin.id}"
    for change in ({"role": "instructor"}, {"role": "student"}, {"is_active": False}):
        r = await client.put(url, json=change, headers=h)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "last_admin"
    assert (await client.get("/v1/users/me", headers=h)).json()["role"] == "admin"
    # With a second active admin, either may step down; then the other is the last one.
    other = make_user("admin")
    oh = auth_for(other)
    r = await client.put(url, json={"role": "instructor"}, headers=oh)
    assert r.status_code == 200 and r.json()["role"] == "instructor"
    r = await client.put(f"/v1/users/{other.id}", json={"is_active": False}, headers=oh)
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
    # An inactive admin does not count: deactivating the only active one is still refused.
    dormant = make_user("admin")
    r = await client.put(f"/v1/users/{dormant.id}", json={"is_active": False}, headers=oh)
    assert r.status_code == 200
    r = await client.put(f"/v1/users/{other.id}", json={"role": "student"}, headers=oh)
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"


async def test_two_admins_deleting_each_other_at_once_leave_one(client, db, make_user, auth_for):
    first, second = make_user("admin"), make_user("admin")
    fh, sh = auth_for(first), auth_for(second)
    # Both requests get past authentication before either deletes: a second connection holds
    # a lock that stops every DELETE on users (not the reads, nor row locks) until released.
    holder = db.get_bind().connect()
    holder.execute(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))

    def waiting() -> int:
        with db.get_bind().connect() as probe:
            return probe.scalar(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            )

    try:
        requests = [
            asyncio.create_task(client.delete(f"/v1/users/{second.id}", headers=fh)),
            asyncio.create_task(client.delete(f"/v1/users/{first.id}", headers=sh)),
        ]
        deadline = time.monotonic() + 20
        while await asyncio.to_thread(waiting) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(waiting) >= 2, "both deletes should be waiting"
    finally:
        holder.rollback()
        holder.close()
    results = await asyncio.gather(*requests)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [204, 409], [r.text for r in results]
    refused = next(r for r in results if r.status_code == 409)
    assert refused.json()["error"]["code"] == "last_admin"
    assert count(db, m.User, m.User.role == "admin", m.User.is_active) == 1
