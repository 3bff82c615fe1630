"""Issue #4 figures: requests/s for `POST /v1/tests/{id}/submit` and `GET /v1/tests/{id}` of a
50-question test (5 options each, half multiple-answer), against gunicorn with 2 uvicorn
workers, driven by the shared closed-loop httpx client (bench/_stack.py) on the same machine.

Run: `python -m common.cli exec .venv/bin/python bench/bench_tests_api.py`.

GET is measured with the response cache on (the default) and off, as a student (key-free
view) and as the owner (with the key). Every submit is a real attempt: 128 students, each
virtual user cycling through its own 8, so no two requests race for one student's attempt.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _stack import fresh_database, gunicorn, load

N_QUESTIONS = 50
N_OPTIONS = 5
USERS = 16  # concurrent virtual users
STUDENTS_EACH = 8


def tokens(env: dict[str, str], n_students: int) -> tuple[dict[str, str], list[dict[str, str]]]:
    """An instructor and students with sessions and access tokens (no password hashing)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    from common.security import encode_token
    from common.settings import Settings

    settings = Settings(database_url=env["DATABASE_URL"], jwt_secret=env["JWT_SECRET"])
    url = make_url(env["DATABASE_URL"]).set(drivername="postgresql")
    conn = psycopg2.connect(url.render_as_string(hide_password=False))
    out = []
    with conn, conn.cursor() as cur:
        for i in range(n_students + 1):
            role = "instructor" if i == 0 else "student"
            cur.execute(
                "INSERT INTO users (username, role, password_hash) VALUES (%s, %s, 'x') "
                "RETURNING id",
                (f"{role}{i:04d}", role),
            )
            user_id = cur.fetchone()[0]
            sid = uuid.uuid4()
            cur.execute(
                "INSERT INTO auth_sessions (id, user_id, current_refresh_jti, refresh_expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (str(sid), user_id, str(uuid.uuid4()), datetime.now(UTC) + timedelta(days=1)),
            )
            token, _ = encode_token(
                settings, user_id=user_id, role=role, session_id=sid, typ="access"
            )
            out.append({"Authorization": f"Bearer {token}"})
    conn.close()
    return out[0], out[1:]


def quiz(rng: random.Random) -> dict[str, Any]:
    questions = []
    for q in range(N_QUESTIONS):
        multiple = q % 2 == 1
        correct = set(rng.sample(range(N_OPTIONS), rng.randint(1, 3) if multiple else 1))
        questions.append(
            {
                "text": f"Question {q}: " + "lorem ipsum " * 8,
                "points": rng.randint(1, 4),
                "multiple": multiple,
                "options": [
                    {"text": f"Option {o} " + "dolor sit " * 3, "is_correct": o in correct}
                    for o in range(N_OPTIONS)
                ],
            }
        )
    return {
        "title": "Benchmark quiz",
        "questions": questions,
        "attempts_allowed": 100,
        "scoring_scheme": "partial",
    }


def answer_pool(test: dict[str, Any], rng: random.Random, n: int = 200) -> list[dict[str, Any]]:
    pool = []
    for _ in range(n):
        answers: dict[str, Any] = {}
        for q in test["questions"]:
            if rng.random() < 0.1:
                continue
            ids = [o["id"] for o in q["options"]]
            answers[str(q["id"])] = (
                rng.sample(ids, rng.randint(1, 3)) if q["multiple"] else (rng.choice(ids))
            )
        pool.append({"answers": answers})
    return pool


def measure(
    base: str,
    url: str,
    owner: dict[str, str],
    students: list[dict[str, str]],
    pool: list[dict[str, Any]] | None,
    label: str,
) -> list[Any]:
    results = [
        load(
            f"GET /v1/tests/{{id}} student, {label}",
            base,
            lambda c, i: c.get(url, headers=students[i % len(students)]),
            concurrency=USERS,
            duration=8,
        ),
        load(
            f"GET /v1/tests/{{id}} owner, {label}",
            base,
            lambda c, i: c.get(url, headers=owner),
            concurrency=USERS,
            duration=8,
        ),
    ]
    if pool is not None:

        def submit(c: httpx.AsyncClient, i: int) -> Any:
            user, n = divmod(i, 1_000_000)
            student = students[user * STUDENTS_EACH + n % STUDENTS_EACH]
            return c.post(f"{url}/submit", json=pool[n % len(pool)], headers=student)

        results.append(
            load(
                "POST /v1/tests/{id}/submit (scored, stored)",
                base,
                submit,
                concurrency=USERS,
                duration=8,
                expect=201,
            )
        )
    return results


def main() -> None:
    rng = random.Random(7)
    with fresh_database("mcq_bench_tests_api") as env:
        env = {**env, "RATE_LIMIT_ENABLED": "false"}
        owner, students = tokens(env, USERS * STUDENTS_EACH)
        with gunicorn({**env, "CACHE_ENABLED": "true"}, workers=2) as base:
            r = httpx.post(f"{base}/v1/tests", json=quiz(rng), headers=owner, timeout=30)
            assert r.status_code == 201, r.text
            test = r.json()
            url = f"/v1/tests/{test['id']}"
            size = len(httpx.get(f"{base}{url}", headers=students[0]).content)
            print(
                f"== tests API: {N_QUESTIONS}-question test ({size:,} bytes as a student); "
                f"gunicorn, 2 uvicorn workers; {USERS} closed-loop httpx clients =="
            )
            results = measure(base, url, owner, students, answer_pool(test, rng), "cache on")
        with gunicorn({**env, "CACHE_ENABLED": "false"}, workers=2) as base:
            results += measure(base, url, owner, students, None, "cache off")
        for result in results:
            print("  " + result.line())


if __name__ == "__main__":
    main()
