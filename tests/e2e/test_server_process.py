"""The real server, started the way `make run` starts it, answers over TCP."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from conftest import PASSWORD, ROOT, free_port


def test_uvicorn_process_serves_login_docs_and_health(test_env, make_user, tmp_path):
    user = make_user("instructor")
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, **test_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "api.log"
            ).read_text()
            time.sleep(0.1)
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
        log.close()
