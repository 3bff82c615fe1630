from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.models import AuthSession, User


async def test_admin_creates_user_and_duplicate_is_409(client, admin, auth_for):
    h = auth_for(admin)
    body = {"username": "new.student", "password": "s3cret-Pass", "role": "student"}
    r = await client.post("/v1/users", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["username"] == "new.student" and created["role"] == "student"
    assert "password" not in created and "password_hash" not in created
    r = await client.post("/v1/users", json={**body, "username": "NEW.student"}, headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "username_taken"


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"password": "short1"}, "password"),
        ({"password": "alllettersonly"}, "password"),
        ({"password": "12345678901"}, "password"),
        ({"role": "superuser"}, "role"),
        ({"username": "x" * 65}, "username"),
        ({"username": "bad name"}, "username"),
        ({"full_name": "y" * 201}, "full_name"),
        ({"email": "not-an-email"}, "email"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_create_user_validation(client, admin, auth_for, patch, path):
    body = {"username": "valid.user", "password": "s3cret-Pass", "role": "student", **patch}
    r = await client.post("/v1/users", json=body, headers=auth_for(admin))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert path in {d["path"] for d in error["details"]}


async def test_list_users_paginates_with_total_and_filters_by_role(
    client, admin, make_user, auth_for
):
    for _ in range(5):
        make_user("student")
    make_user("instructor")
    h = auth_for(admin)
    r = await client.get("/v1/users", params={"limit": 2, "offset": 1}, headers=h)
    assert r.status_code == 200
    assert len(r.json()) == 2
    assert r.headers["x-total-count"] == "7"
    assert [u["id"] for u in r.json()] == sorted(u["id"] for u in r.json())
    r = await client.get("/v1/users", params={"role": "student"}, headers=h)
    assert {u["role"] for u in r.json()} == {"student"}
    assert r.headers["x-total-count"] == "5"
    assert set(r.json()[0]) >= {"id", "username", "role", "created_at"}


async def test_instructor_sees_students_only(client, instructor, admin, student, auth_for):
    h = auth_for(instructor)
    r = await client.get("/v1/users", headers=h)
    assert [u["id"] for u in r.json()] == [student.id]
    assert (await client.get(f"/v1/users/{student.id}", headers=h)).status_code == 200
    assert (await client.get(f"/v1/users/{admin.id}", headers=h)).status_code == 404


async def test_student_reads_and_updates_only_self(client, student, make_user, auth_for):
    other = make_user("student")
    h = auth_for(student)
    assert (await client.get(f"/v1/users/{student.id}", headers=h)).status_code == 200
    assert (await client.get(f"/v1/users/{other.id}", headers=h)).status_code == 404
    r = await client.put(f"/v1/users/{student.id}", json={"full_name": "Ada L."}, headers=h)
    assert r.status_code == 200 and r.json()["full_name"] == "Ada L."
    r = await client.put(f"/v1/users/{other.id}", json={"full_name": "X"}, headers=h)
    assert r.status_code == 404
    r = await client.put(f"/v1/users/{student.id}", json={"role": "admin"}, headers=h)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "role_change_forbidden"


async def test_own_password_change_needs_current_password_and_ends_sessions(
    client, student, auth_for
):
    h = auth_for(student)
    r = await client.put(f"/v1/users/{student.id}", json={"password": "n3w-Password!"}, headers=h)
    assert r.status_code == 422
    r = await client.put(
        f"/v1/users/{student.id}",
        json={"password": "n3w-Password!", "current_password": "Correct-horse-9"},
        headers=h,
    )
    assert r.status_code == 200
    assert (await client.get("/v1/users/me", headers=h)).status_code == 401
    r = await client.post(
        "/v1/auth/login", json={"username": student.username, "password": "n3w-Password!"}
    )
    assert r.status_code == 200


async def test_admin_changes_role_and_demotion_applies_at_once(client, admin, instructor, auth_for):
    ih = auth_for(instructor)
    assert (await client.get("/v1/users", headers=ih)).status_code == 200
    r = await client.put(
        f"/v1/users/{instructor.id}", json={"role": "student"}, headers=auth_for(admin)
    )
    assert r.status_code == 200 and r.json()["role"] == "student"
    assert (await client.get("/v1/users", headers=ih)).status_code == 403


async def test_delete_user_leaves_nothing_and_revokes_sessions(
    client, db, admin, student, auth_for
):
    sh = auth_for(student)
    r = await client.delete(f"/v1/users/{student.id}", headers=auth_for(admin))
    assert r.status_code == 204
    assert db.scalar(select(func.count()).select_from(User).where(User.id == student.id)) == 0
    assert (
        db.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.user_id == student.id)
        )
        == 0
    )
    assert (await client.get("/v1/users/me", headers=sh)).status_code == 401
    again = await client.delete(f"/v1/users/{student.id}", headers=auth_for(admin))
    assert again.status_code == 404


async def test_admin_cannot_delete_self(client, admin, auth_for):
    r = await client.delete(f"/v1/users/{admin.id}", headers=auth_for(admin))
    assert r.status_code == 409


@pytest.mark.parametrize("bad_id", ["0", "-1", "99999999999999", "abc"])
async def test_bad_ids_are_422_never_500(client, admin, auth_for, bad_id):
    r = await client.get(f"/v1/users/{bad_id}", headers=auth_for(admin))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


async def test_pagination_bounds(client, admin, auth_for):
    h = auth_for(admin)
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert (await client.get("/v1/users", params=params, headers=h)).status_code == 422
