"""The exam minute: a whole year group logs in, opens the test, starts and submits at once.

N students (EXAM_STUDENTS, default 1,000; or the first argument) are seeded directly in the
database with one precomputed password hash (this checkout's `hash_password`), in classes of
30 assigned to one 50-question timed test. Every student runs login -> GET /v1/tests/{id} ->
POST .../attempts -> POST .../submit, all released at once, all from one client address (as
behind a school's NAT) with the shipped rate limits on. Meanwhile a probe client calls
GET /v1/users/me every 100 ms. The server runs the production way: gunicorn, 2 uvicorn workers,
against DATABASE_URL / REDIS_URL (its own database and Redis key prefix).

Prints the time until all have started and all have submitted, p50/p99 per step, the probe's
p99 during the storm against its idle p99, and every non-2xx answer and transport error by step.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

import httpx
from _stack import fresh_database, gunicorn
from sqlalchemy import create_engine, text

from common.db import sync_url
from common.security import hash_password

QUESTIONS = 50
CLASS_SIZE = 30
PASSWORD = "exam-minute-password"
STEPS = ("login", "open", "start", "submit")


def seed(env: dict[str, str], students: int) -> tuple[str, list[str]]:
    """Instructor + students with one precomputed hash, classes, their memberships; returns
    the instructor's username and the students' usernames."""
    digest = hash_password(PASSWORD)
    engine = create_engine(sync_url(env["DATABASE_URL"]))
    names = [f"s{i:05d}" for i in range(students)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, role, password_hash) VALUES ('teacher', "
                "'instructor', :h)"
            ),
            {"h": digest},
        )
        conn.execute(
            text("INSERT INTO users (username, role, password_hash) VALUES (:u, 'student', :h)"),
            [{"u": n, "h": digest} for n in names],
        )
    engine.dispose()
    return "teacher", names


def assign(env: dict[str, str], test_id: int, students: int) -> None:
    engine = create_engine(sync_url(env["DATABASE_URL"]))
    with engine.begin() as conn:
        owner = conn.execute(text("SELECT id FROM users WHERE username = 'teacher'")).scalar()
        ids = [
            r[0]
            for r in conn.execute(text("SELECT id FROM users WHERE role = 'student' ORDER BY id"))
        ]
        for start in range(0, students, CLASS_SIZE):
            class_id = conn.execute(
                text("INSERT INTO classes (owner_id, name) VALUES (:o, :n) RETURNING id"),
                {"o": owner, "n": f"Year 11 group {start // CLASS_SIZE + 1}"},
            ).scalar()
            conn.execute(
                text("INSERT INTO class_members (class_id, user_id) VALUES (:c, :u)"),
                [{"c": class_id, "u": u} for u in ids[start : start + CLASS_SIZE]],
            )
            conn.execute(
                text("INSERT INTO test_classes (test_id, class_id) VALUES (:t, :c)"),
                {"t": test_id, "c": class_id},
            )
    engine.dispose()


def exam_body() -> dict[str, Any]:
    return {
        "title": "Year 11 mock exam",
        "description": "50 questions, 45 minutes",
        "time_limit_seconds": 45 * 60,
        "questions": [
            {
                "text": f"Question {q + 1}",
                "options": [{"text": f"Option {o}", "is_correct": o == q % 4} for o in range(4)],
            }
            for q in range(QUESTIONS)
        ],
    }


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


class Storm:
    def __init__(self, base: str, test_id: int, names: list[str]) -> None:
        self.base = base
        self.test_id = test_id
        self.names = names
        self.latency: dict[str, list[float]] = {s: [] for s in STEPS}
        self.failures: dict[str, Counter[str]] = {s: Counter() for s in STEPS}
        self.started: list[float] = []
        self.submitted: list[float] = []

    async def step(
        self, name: str, client: httpx.AsyncClient, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        t = time.perf_counter()
        try:
            r = await client.request(method, url, **kw)
        except httpx.TransportError as exc:
            self.failures[name][f"transport {type(exc).__name__}"] += 1
            return None
        self.latency[name].append(time.perf_counter() - t)
        if r.status_code >= 300:
            code = ""
            with contextlib.suppress(Exception):  # a non-JSON body is reported by status alone
                code = r.json()["error"]["code"]
            self.failures[name][f"{r.status_code} {code}".strip()] += 1
            return None
        return r

    async def student(self, client: httpx.AsyncClient, name: str, release: float) -> None:
        await asyncio.sleep(max(0.0, release - time.perf_counter()))
        r = await self.step(
            "login", client, "POST", "/v1/auth/login", json={"username": name, "password": PASSWORD}
        )
        if r is None:
            return
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        if (
            await self.step("open", client, "GET", f"/v1/tests/{self.test_id}", headers=auth)
            is None
        ):
            return
        attempt = await self.step(
            "start", client, "POST", f"/v1/tests/{self.test_id}/attempts", headers=auth
        )
        if attempt is None:
            return
        self.started.append(time.perf_counter() - release)
        questions = attempt.json()["questions"]
        answers = {str(q["id"]): random.choice(q["options"])["id"] for q in questions}
        submitted = await self.step(
            "submit",
            client,
            "POST",
            f"/v1/tests/{self.test_id}/submit",
            headers=auth,
            json={"answers": answers},
        )
        if submitted is not None:
            self.submitted.append(time.perf_counter() - release)


async def probe(
    client: httpx.AsyncClient, auth: dict[str, str], stop: asyncio.Event
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    while not stop.is_set():
        t = time.perf_counter()
        try:
            r = await client.get("/v1/users/me", headers=auth)
            errors += r.status_code != 200
        except httpx.TransportError:
            errors += 1
        latencies.append(time.perf_counter() - t)
        await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - t)))
    return latencies, errors


async def run(base: str, test_id: int, names: list[str], teacher_token: str) -> None:
    auth = {"Authorization": f"Bearer {teacher_token}"}
    timeout = httpx.Timeout(180, connect=60)
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as probe_client:
        stop = asyncio.Event()
        idle_task = asyncio.create_task(probe(probe_client, auth, stop))
        await asyncio.sleep(5)
        stop.set()
        idle, _ = await idle_task

        storm = Storm(base, test_id, names)
        limits = httpx.Limits(max_connections=len(names), max_keepalive_connections=len(names))
        async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
            stop = asyncio.Event()
            busy_task = asyncio.create_task(probe(probe_client, auth, stop))
            release = time.perf_counter() + 0.5
            await asyncio.gather(*(storm.student(client, n, release) for n in names))
            wall = time.perf_counter() - release
            stop.set()
            busy, probe_errors = await busy_task

    n = len(names)
    print(f"students {n}, questions {QUESTIONS}, one client address, shipped rate limits")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min avg, {os.cpu_count()} cores)")
    started = max(storm.started) if len(storm.started) == n else float("nan")
    done = max(storm.submitted) if len(storm.submitted) == n else float("nan")
    print(
        f"all started after {started:.1f} s, all submitted after {done:.1f} s "
        f"(started {len(storm.started)}/{n}, submitted {len(storm.submitted)}/{n}, "
        f"storm {wall:.1f} s)"
    )
    for s in STEPS:
        lat = storm.latency[s]
        print(
            f"  {s:<7} p50 {pct(lat, 50):8.1f} ms   p99 {pct(lat, 99):8.1f} ms   "
            f"({len(lat)} answers)"
        )
    print(
        f"  probe GET /v1/users/me p99 {pct(busy, 99):.1f} ms during the storm "
        f"(p50 {pct(busy, 50):.1f} ms, {len(busy)} calls, {probe_errors} errors), "
        f"idle p99 {pct(idle, 99):.1f} ms (p50 {statistics.median(idle) * 1000:.1f} ms)"
    )
    total = sum(sum(c.values()) for c in storm.failures.values())
    print(f"errors: {total}")
    for s in STEPS:
        for what, count in storm.failures[s].most_common():
            print(f"  {s:<7} {what}: {count}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


def main() -> int:
    students = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("EXAM_STUDENTS", 1000))
    with fresh_database("mcq_exam") as env:
        # The shipped limits: a year group behind one address must get through them.
        env = {**env, "RATE_LIMIT_ENABLED": "true"}
        teacher, names = seed(env, students)
        with gunicorn(env, workers=2) as base:
            login = httpx.post(
                f"{base}/v1/auth/login",
                json={"username": teacher, "password": PASSWORD},
                timeout=30,
            )
            login.raise_for_status()
            token = login.json()["access_token"]
            r = httpx.post(
                f"{base}/v1/tests",
                json=exam_body(),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            r.raise_for_status()
            test_id = int(r.json()["id"])
            assign(env, test_id, students)
            asyncio.run(run(base, test_id, names, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
