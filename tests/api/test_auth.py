from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from helpers import PASSWORD
from sqlalchemy import select

from common.models import AuthSession


async def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    return await client.post("/v1/auth/login", json={"username": username, "password": password})


async def test_login_returns_token_pair_usable_for_me(client, student):
    r = await login(client, student.username)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["username"] == student.username


async def test_login_accepts_oauth2_password_form(client, student):
    r = await client.post(
        "/v1/auth/login",
        data={"grant_type": "password", "username": student.username, "password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]


async def test_login_is_case_insensitive_on_username(client, make_user):
    make_user("student", username="Alice.Smith")
    assert (await login(client, "alice.smith")).status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [("nobody-here", PASSWORD), ("{student}", "wrong-password-1")]
)
async def test_bad_credentials_are_401_with_error_body(client, student, username, password):
    r = await login(client, username.format(student=student.username), password)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credentials"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_login_validation_errors_are_422(client):
    r = await client.post("/v1/auth/login", json={"username": ""})
    assert r.status_code == 422
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert {"username", "password"} <= paths
    r = await client.post(
        "/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    # A NUL character (PostgreSQL text cannot hold it), as JSON or as the form: 422, not 500.
    r = await client.post("/v1/auth/login", json={"username": "a\x00b", "password": "x"})
    assert r.status_code == 422
    r = await client.post("/v1/auth/login", data={"username": "a\x00b", "password": "x"})
    assert r.status_code == 422


async def test_unknown_user_costs_as_much_as_known_user(client, student):
    """Login must not reveal which usernames exist through its timing."""

    async def median(username: str) -> float:
        times = []
        for _ in range(5):  # the sixth failure in a row would be throttled
            start = time.perf_counter()
            await login(client, username, "wrong-password-1")
            times.append(time.perf_counter() - start)
        return sorted(times)[2]

    known, unknown = await median(student.username), await median("no-such-user-x")
    # Both verify one Argon2 hash; without the dummy hash the unknown user answers ~100x faster.
    assert unknown > known * 0.5


async def test_refresh_rotates_and_reuse_revokes_family(client, student):
    first = (await login(client, student.username)).json()
    r = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    # The first refresh token is now used: presenting it again is theft, the family dies.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "token_reused"
    again = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me.status_code == 401


async def test_concurrent_refresh_with_one_token_succeeds_once(client, student):
    tokens = (await login(client, student.username)).json()
    results = await asyncio.gather(
        *[
            client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            for _ in range(5)
        ]
    )
    assert sorted(r.status_code for r in results).count(200) == 1


async def test_logout_rejects_access_and_refresh_tokens(client, student):
    tokens = (await login(client, student.username)).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await client.post("/v1/auth/logout", headers=headers)
    assert r.status_code == 204
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 401
    r = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


def _forge(settings: Any, **overrides: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": "1",
        "role": "admin",
        "scope": "admin",
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    secret = overrides.pop("secret", settings.jwt_secret.get_secret_value())
    algorithm = overrides.pop("algorithm", "HS256")
    payload.update(overrides)
    return jwt.encode(payload, secret, algorithm=algorithm)


async def test_bad_tokens_are_rejected(client, student, settings, db):
    good = (await login(client, student.username)).json()
    session = db.scalars(select(AuthSession).where(AuthSession.user_id == student.id)).first()
    real = {"sub": str(student.id), "sid": str(session.id)}
    header, body, sig = good["access_token"].split(".")
    unsigned = jwt.encode({**real, "typ": "access", "jti": str(uuid.uuid4())}, None, "none")
    candidates = {
        "expired": _forge(settings, **real, exp=int(time.time()) - 10),
        "wrong_secret": _forge(settings, **real, secret="another-secret-" + "y" * 40),
        "tampered": f"{header}.{body[:-4]}AAAA.{sig}",
        "alg_none": unsigned,
        "refresh_as_access": good["refresh_token"],
        "garbage": "not.a.token",
    }
    for name, token in candidates.items():
        r = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["error"]["code"] in ("invalid_token", "unauthorized"), name


async def test_access_token_carries_claims(client, student, settings):
    tokens = (await login(client, student.username)).json()
    claims = jwt.decode(
        tokens["access_token"], settings.jwt_secret.get_secret_value(), algorithms=["HS256"]
    )
    assert claims["sub"] == str(student.id)
    assert claims["role"] == "student"
    assert "tests:take" in claims["scope"].split()
    assert claims["typ"] == "access"
    assert uuid.UUID(claims["sid"]) and uuid.UUID(claims["jti"])
    assert claims["exp"] - claims["iat"] == 15 * 60
