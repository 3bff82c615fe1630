"""Two real API processes, each with its own principal cache: a request served from one
process's cache stops working the moment another process (or any other writer) logs the
session out, deactivates, demotes or deletes the user, or revokes the session for reuse."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import PASSWORD, start_api_server


@pytest.fixture(scope="module")
def two_processes(
    test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    tmp_path = tmp_path_factory.mktemp("two-api-processes")
    env = {**os.environ, **test_env, "PRINCIPAL_CACHE_SECONDS": "30"}
    a, base_a = start_api_server(env, tmp_path / "a.log")
    try:
        b, base_b = start_api_server(env, tmp_path / "b.log")
        try:
            yield base_a, base_b
        finally:
            b.terminate()
            b.wait(10)
    finally:
        a.terminate()
        a.wait(10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(base: str, username: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def cache_hits(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    found = re.search(r'^mcq_principal_cache_total\{result="hit"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def cached_on(base: str, token: str, path: str = "/v1/users/me") -> None:
    """Answers from `base`, the last one from its cache (no database read). A process serves
    from its cache once its invalidation listener has subscribed, just after start-up."""
    deadline = time.monotonic() + 10
    while True:
        assert httpx.get(f"{base}{path}", headers=bearer(token)).status_code == 200
        hits = cache_hits(base)
        assert httpx.get(f"{base}{path}", headers=bearer(token)).status_code == 200
        if cache_hits(base) == hits + 1:
            return
        assert time.monotonic() < deadline, "the principal cache never answered"
        time.sleep(0.2)


def refused_on(base: str, token: str, path: str = "/v1/users/me", status: int = 401) -> None:
    r = httpx.get(f"{base}{path}", headers=bearer(token))
    assert r.status_code == status, r.text


def test_logout_on_one_process_applies_on_the_other_at_once(two_processes, make_user):
    a, b = two_processes
    student = make_user("student")
    token = login(a, student.username)["access_token"]
    cached_on(b, token)
    assert httpx.post(f"{a}/v1/auth/logout", headers=bearer(token)).status_code == 204
    refused_on(b, token)
    refused_on(a, token)


def test_admin_changes_on_one_process_apply_on_the_other_at_once(
    two_processes, make_user, auth_for
):
    a, b = two_processes
    admin = auth_for(make_user("admin"))
    # Deactivation.
    student = make_user("student")
    token = login(a, student.username)["access_token"]
    cached_on(b, token)
    r = httpx.put(f"{a}/v1/users/{student.id}", json={"is_active": False}, headers=admin)
    assert r.status_code == 200, r.text
    refused_on(b, token)
    # Demotion: the instructor's scopes shrink on the other process at once.
    instructor = make_user("instructor")
    token = login(a, instructor.username)["access_token"]
    cached_on(b, token, "/v1/users")
    r = httpx.put(f"{a}/v1/users/{instructor.id}", json={"role": "student"}, headers=admin)
    assert r.status_code == 200, r.text
    refused_on(b, token, "/v1/users", status=403)
    # Deletion.
    doomed = make_user("student")
    token = login(a, doomed.username)["access_token"]
    cached_on(b, token)
    assert httpx.delete(f"{a}/v1/users/{doomed.id}", headers=admin).status_code == 204
    refused_on(b, token)


def test_refresh_reuse_and_password_change_revoke_everywhere(two_processes, make_user):
    a, b = two_processes
    student = make_user("student")
    first = login(a, student.username)
    cached_on(b, first["access_token"])
    rotated = httpx.post(f"{a}/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    reused = httpx.post(f"{a}/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.json()["error"]["code"] == "token_reused"
    refused_on(b, first["access_token"])
    # A password change ends the account's other sessions.
    other = login(a, student.username)["access_token"]
    mine = login(a, student.username)["access_token"]
    cached_on(b, other)
    r = httpx.put(
        f"{a}/v1/users/{student.id}",
        json={"password": "Another-horse-10", "current_password": PASSWORD},
        headers=bearer(mine),
    )
    assert r.status_code == 200, r.text
    refused_on(b, other)


def test_a_write_from_another_kind_of_process_applies_at_once(two_processes, make_user, db):
    """The worker, the CLI or a script writing through the ORM invalidates too."""
    a, b = two_processes
    student = make_user("student")
    token = login(a, student.username)["access_token"]
    cached_on(a, token)
    cached_on(b, token)
    student.is_active = False
    db.commit()
    refused_on(a, token)
    refused_on(b, token)
