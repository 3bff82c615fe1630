"""Issue #2 figures: login, /users/me and /users?limit=100 (1,000 users) under load against
gunicorn with 2 uvicorn workers."""

from __future__ import annotations

import sys

from _stack import fresh_database, gunicorn, load, login

PASSWORD = "Bench-password-1"


def seed(env: dict[str, str], users: int = 1000) -> None:
    import os

    os.environ["DATABASE_URL"] = env["DATABASE_URL"]
    from common.db import SyncDatabase
    from common.models import User
    from common.security import hash_password
    from common.settings import Settings

    database = SyncDatabase(Settings(database_url=env["DATABASE_URL"]))
    hashed = hash_password(PASSWORD)
    with database.transaction() as session:
        session.add(User(username="bench-admin", role="admin", password_hash=hashed))
        session.add_all(
            User(username=f"student{i:04d}", role="student", password_hash=hashed)
            for i in range(users - 1)
        )
    database.dispose()


def main() -> None:
    with fresh_database() as env:
        seed(env)
        with gunicorn(env, workers=2) as base:
            auth = login(base, "bench-admin", PASSWORD)
            print("== auth and users (gunicorn, 2 uvicorn workers; httpx closed-loop client) ==")
            results = [
                load(
                    "POST /v1/auth/login (Argon2id verify)",
                    base,
                    lambda c, i: c.post(
                        "/v1/auth/login",
                        json={"username": f"student{i % 999:04d}", "password": PASSWORD},
                    ),
                    concurrency=8,
                    duration=8,
                ),
                load("GET /v1/users/me", base, lambda c, i: c.get("/v1/users/me", headers=auth)),
                load(
                    "GET /v1/users?limit=100 (1,000 users)",
                    base,
                    lambda c, i: c.get("/v1/users", params={"limit": 100}, headers=auth),
                ),
            ]
            for r in results:
                print(r.line())
            sys.stdout.flush()


if __name__ == "__main__":
    main()
