"""The exam minute's rules, in one process: a busy pool or hashing queue answers 503 with
Retry-After (never a 500), a login holds no connection while its password hashes, the hash
costs what OWASP says, and an authenticated request needs no database connection."""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher
from helpers import PASSWORD
from sqlalchemy import select

from common.models import User
from common.security import hash_password

# A deliberately slow Argon2id hash (~0.5 s here), as an old system or a costly setting made.
SLOW = PasswordHasher(time_cost=3, memory_cost=32_768, parallelism=1)


def slow_user(db: Any, make_user: Any, role: str = "student") -> Any:
    user = make_user(role)
    user.password_hash = SLOW.hash(PASSWORD)
    db.commit()
    return user


async def login(client: Any, username: str) -> Any:
    return await client.post("/v1/auth/login", json={"username": username, "password": PASSWORD})


def assert_busy(r: Any, code: str) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


async def test_exhausted_pool_is_503_with_retry_after_and_me_needs_no_connection(
    peer_app, make_user, auth_for
):
    api = await peer_app(db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.3)
    student = make_user("student")
    headers = auth_for(student)
    async with api() as client:
        assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
        # Someone holds the only connection: a request that needs the database waits its
        # bounded time, then is told to come back; /me answers from the principal cache.
        async with api.app.state.resources.db.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            r = await client.get("/v1/tests", headers=headers)
            assert_busy(r, "database_busy")
            me = await client.get("/v1/users/me", headers=headers)
            assert me.status_code == 200
            assert me.json()["username"] == student.username
        assert (await client.get("/v1/tests", headers=headers)).status_code == 200


async def test_login_holds_no_connection_while_the_password_hashes(peer_app, db, make_user):
    # One connection, a short wait for it, and passwords that take longer than the wait:
    # a login that kept its connection while hashing would starve the next one into an error.
    api = await peer_app(db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)
    users = [slow_user(db, make_user) for _ in range(3)]
    async with api() as client:
        answers = await asyncio.gather(*(login(client, u.username) for u in users))
    assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]


async def test_full_hashing_queue_is_503_login_busy_with_retry_after(peer_app, db, make_user):
    api = await peer_app(password_hash_workers=1, password_hash_queue=1)
    users = [slow_user(db, make_user) for _ in range(3)]
    async with api() as client:
        answers = await asyncio.gather(*(login(client, u.username) for u in users))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) == {200, 503}, [r.text for r in answers]
    for r in answers:
        if r.status_code == 503:
            assert_busy(r, "login_busy")
    # The refused ones were not counted as failed guesses: they log in once the queue drains.
    async with api() as client:
        for u in users:
            assert (await login(client, u.username)).status_code == 200


def test_new_hashes_use_owasp_argon2id_parameters(settings):
    digest = hash_password("anything at all", settings)
    assert digest.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_old_hashes_are_replaced_at_the_next_successful_login(client, db, make_user):
    old_argon = slow_user(db, make_user)
    old_bcrypt = make_user("student")
    import bcrypt

    old_bcrypt.password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    db.commit()
    wrong = await client.post(
        "/v1/auth/login", json={"username": old_argon.username, "password": "wrong-password-1"}
    )
    assert wrong.status_code == 401
    db.expire_all()
    assert db.get(User, old_argon.id).password_hash.startswith("$argon2id$v=19$m=32768,t=3")
    for user in (old_argon, old_bcrypt):
        assert (await login(client, user.username)).status_code == 200
        db.expire_all()
        stored = db.scalar(select(User.password_hash).where(User.id == user.id))
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        # ... and the new hash is the password's.
        assert (await login(client, user.username)).status_code == 200
