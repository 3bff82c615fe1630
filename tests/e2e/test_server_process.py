"""The real server, started the way `make run` starts it, answers over TCP."""

from __future__ import annotations

import os

import httpx
from helpers import PASSWORD, start_api_server


def test_uvicorn_process_serves_login_docs_and_health(test_env, make_user, tmp_path):
    user = make_user("instructor")
    proc, base = start_api_server({**os.environ, **test_env}, tmp_path / "api.log")
    try:
        r = httpx.post(
            f"{base}/v1/auth/login", json={"username": user.username, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        me = httpx.get(f"{base}/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["role"] == "instructor"
        assert httpx.get(f"{base}/health").json()["components"]["database"]["status"] == "ok"
        # The docs pages load their assets from the app itself, not from a CDN.
        docs = httpx.get(f"{base}/docs").text
        assert "cdn.jsdelivr" not in docs and "unpkg" not in docs
        asset = docs.split('src="')[1].split('"')[0]
        assert httpx.get(f"{base}{asset}").status_code == 200
        redoc = httpx.get(f"{base}/redoc").text
        redoc_js = redoc.split('src="')[1].split('"')[0]
        assert redoc_js.startswith("/") and httpx.get(f"{base}{redoc_js}").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
