"""Issue #4 figure: regrade 100,000 submissions of a 50-question test, end to end through the
worker, against a straightforward per-row ORM loop doing the same work in the same run.

Run: `python -m common.cli exec .venv/bin/python bench/bench_regrade.py [N_SUBMISSIONS]`.

The benchmark seeds its own database: 100,000 students with one submission each (random
answers, about 10 % of questions left blank, stored exactly as the API stores them), then edits
the key of two questions, which changes about a third of the scores. Rounds, after an untimed
dry run that warms up the servers:
  1. worker: POST /v1/tests/{id}/regrade (gunicorn) -> Celery worker -> job succeeded, timed
     from the request to the poll that sees the job finished (the figure that counts);
  2. baseline: the key edited back, then a plain ORM loop in this process (load each
     Submission, score it, assign the changed fields, commit once);
  3. worker again, on the same edit as round 1 (the same rows change);
  4. worker with nothing to change (a second regrade is a no-op).
Scores are checked after every round: both implementations give identical results.
"""

from __future__ import annotations

import io
import json
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from _stack import celery_worker, fresh_database, gunicorn

N_QUESTIONS = 50
N_OPTIONS = 5
SEED = 42


def _connect(env: dict[str, str]) -> Any:
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(env["DATABASE_URL"]).set(drivername="postgresql")
    return psycopg2.connect(url.render_as_string(hide_password=False))


def _copy(cur: Any, table: str, columns: str, rows: io.StringIO) -> None:
    rows.seek(0)
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", rows)


def seed(env: dict[str, str], n: int) -> dict[str, Any]:
    """Users, one test with its key, n attempts and submissions, via COPY. Returns ids."""
    from common.grading import answer_key, details_json, score, stored_answers, validate_answers
    from common.models import Exam, Option, Question

    rng = random.Random(SEED)
    conn = _connect(env)
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO users (username, role, password_hash) VALUES ('bench-teacher', "
        "'instructor', 'x') RETURNING id"
    )
    teacher = cur.fetchone()[0]
    users = io.StringIO()
    for i in range(n):
        users.write(f"student{i:06d}\tstudent\tx\n")
    _copy(cur, "users", "username, role, password_hash", users)
    cur.execute("SELECT id FROM users WHERE role = 'student' ORDER BY id")
    students = [row[0] for row in cur.fetchall()]
    cur.execute(
        "INSERT INTO tests (owner_id, title, negative_fraction) VALUES (%s, 'Bench', 0.25) "
        "RETURNING id",
        (teacher,),
    )
    test_id = cur.fetchone()[0]
    questions = []
    for q in range(N_QUESTIONS):
        multiple = q % 2 == 1
        cur.execute(
            "INSERT INTO questions (test_id, position, text, points, multiple) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (test_id, q, f"Question {q}", float(rng.randint(1, 4)), multiple),
        )
        qid = cur.fetchone()[0]
        k = rng.randint(1, 3) if multiple else 1
        correct = set(rng.sample(range(N_OPTIONS), k))
        options = []
        for o in range(N_OPTIONS):
            cur.execute(
                "INSERT INTO options (question_id, position, text, is_correct) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (qid, o, f"Option {o}", o in correct),
            )
            options.append(cur.fetchone()[0])
        questions.append((qid, multiple, options))
    conn.commit()

    # The key as the API builds it, from ORM-shaped rows.
    def load_key() -> Any:
        cur.execute(
            "SELECT scoring_scheme, negative_fraction, unanswered_mark FROM tests WHERE id = %s",
            (test_id,),
        )
        scheme, fraction, blank = cur.fetchone()
        test = Exam(scoring_scheme=scheme, negative_fraction=fraction, unanswered_mark=blank)
        rows = []
        for qid, multiple, _ in questions:
            cur.execute("SELECT points FROM questions WHERE id = %s", (qid,))
            points = cur.fetchone()[0]
            cur.execute(
                "SELECT id, is_correct FROM options WHERE question_id = %s ORDER BY position",
                (qid,),
            )
            opts = [Option(id=oid, is_correct=ok) for oid, ok in cur.fetchall()]
            rows.append(Question(id=qid, points=points, multiple=multiple, options=opts))
        return answer_key(test, rows)

    key = load_key()
    now = datetime.now(UTC).isoformat()
    attempts = io.StringIO()
    for uid in students:
        attempts.write(f"{test_id}\t{uid}\t1\t{now}\t{now}\n")
    _copy(cur, "attempts", "test_id, user_id, number, started_at, submitted_at", attempts)
    cur.execute("SELECT user_id, id FROM attempts WHERE test_id = %s", (test_id,))
    attempt_of = dict(cur.fetchall())
    subs = io.StringIO()
    for uid in students:
        raw: dict[str, Any] = {}
        for qid, multiple, options in questions:
            if rng.random() < 0.1:
                continue
            raw[str(qid)] = (
                rng.sample(options, rng.randint(1, 3)) if multiple else rng.choice(options)
            )
        answers = validate_answers(key, raw)
        result = score(key, answers)
        # Stored exactly as POST /v1/tests/{id}/submit stores them.
        subs.write(
            f"{test_id}\t{uid}\t{attempt_of[uid]}\t1\t{json.dumps(stored_answers(answers, key))}"
            f"\t{result.score!r}\t{result.max_score!r}\t1\t{details_json(result)}\t{now}\n"
        )
    _copy(
        cur,
        "submissions",
        "test_id, user_id, attempt_id, attempt, answers, score, max_score, key_version, "
        "details, graded_at",
        subs,
    )
    conn.commit()
    # As autovacuum would have long done on a real table: hint bits set, statistics fresh.
    conn.autocommit = True
    cur.execute("VACUUM ANALYZE")
    conn.close()
    return {"test_id": test_id, "teacher": teacher, "questions": questions}


def edit_key(env: dict[str, str], info: dict[str, Any], forward: bool) -> None:
    """As a PUT would (key_version + 1, needs_regrade): move the correct option of question 0
    (single answer) one place on and toggle one wrong option of question 1 (multiple) to
    correct; `forward=False` undoes both."""
    conn = _connect(env)
    cur = conn.cursor()
    single, multiple = info["questions"][0][2], info["questions"][1][2]
    cur.execute("SELECT id FROM options WHERE id = ANY(%s) AND is_correct", (single,))
    current = single.index(cur.fetchone()[0])
    target = single[(current + (1 if forward else -1)) % N_OPTIONS]
    cur.execute("UPDATE options SET is_correct = (id = %s) WHERE id = ANY(%s)", (target, single))
    if "toggle" not in info:
        cur.execute(
            "SELECT id FROM options WHERE id = ANY(%s) AND NOT is_correct ORDER BY id LIMIT 1",
            (multiple,),
        )
        info["toggle"] = cur.fetchone()[0]
    cur.execute("UPDATE options SET is_correct = NOT is_correct WHERE id = %s", (info["toggle"],))
    cur.execute(
        "UPDATE tests SET key_version = key_version + 1, revision = revision + 1, "
        "needs_regrade = true WHERE id = %s",
        (info["test_id"],),
    )
    conn.commit()
    conn.close()


def fingerprint(env: dict[str, str], test_id: int) -> str:
    conn = _connect(env)
    cur = conn.cursor()
    cur.execute(
        "SELECT md5(string_agg(score::text || ':' || details::jsonb::text, ',' ORDER BY id)), "
        "sum(score) FROM submissions WHERE test_id = %s",
        (test_id,),
    )
    digest, total = cur.fetchone()
    conn.close()
    return f"{digest[:12]} (sum {total:.2f})"


def orm_baseline(env: dict[str, str], test_id: int) -> dict[str, int]:
    """The straightforward way: load each Submission, score it, assign, commit once."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from common.db import SyncDatabase
    from common.grading import answer_key, normalize_answers, score, stored_details
    from common.models import Exam, Question, Submission
    from common.settings import Settings

    database = SyncDatabase(Settings(database_url=env["DATABASE_URL"]))
    changed = unchanged = 0
    with database.transaction() as session:
        test = session.get(Exam, test_id)
        assert test is not None
        questions = session.scalars(
            select(Question)
            .where(Question.test_id == test_id)
            .options(selectinload(Question.options))
            .order_by(Question.position)
        ).all()
        key = answer_key(test, questions)
        now = datetime.now(UTC)
        for submission in session.scalars(
            select(Submission).where(Submission.test_id == test_id)
        ).all():
            result = score(key, normalize_answers(submission.answers))
            details = stored_details(result)
            if submission.score == result.score and submission.details == details:
                unchanged += 1
                continue
            changed += 1
            submission.previous_score = submission.score
            submission.score = result.score
            submission.details = details
            submission.key_version = test.key_version
            submission.graded_at = now
        test.needs_regrade = False
    database.dispose()
    return {"changed": changed, "unchanged": unchanged}


def worker_regrade(
    base: str, headers: dict[str, str], test_id: int, dry_run: bool = False
) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    r = httpx.post(
        f"{base}/v1/tests/{test_id}/regrade",
        params={"dry_run": str(dry_run).lower()},
        headers=headers,
        timeout=30,
    )
    posted = time.perf_counter() - start
    assert r.status_code == 202, r.text
    task = r.json()["task_id"]
    while True:
        job = httpx.get(f"{base}/v1/tasks/{task}", headers=headers, timeout=30).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    assert job["status"] == "succeeded", job
    created, began, ended = (
        datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")
    )
    job["phases"] = {
        "processes": job["result"].get("processes"),
        "post": round(posted, 2),
        "queued": round((began - created).total_seconds(), 2),
        "running": round((ended - began).total_seconds(), 2),
        **job["result"].get("seconds", {}),
    }
    return elapsed, job


def token_for(env: dict[str, str], user_id: int) -> dict[str, str]:
    import uuid
    from datetime import timedelta

    from common.security import encode_token
    from common.settings import Settings

    settings = Settings(database_url=env["DATABASE_URL"], jwt_secret=env["JWT_SECRET"])
    sid = uuid.uuid4()
    conn = _connect(env)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO auth_sessions (id, user_id, current_refresh_jti, refresh_expires_at) "
            "VALUES (%s, %s, %s, %s)",
            (str(sid), user_id, str(uuid.uuid4()), datetime.now(UTC) + timedelta(days=1)),
        )
    conn.close()
    token, _ = encode_token(
        settings, user_id=user_id, role="instructor", session_id=sid, typ="access"
    )
    return {"Authorization": f"Bearer {token}"}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with fresh_database("mcq_bench_regrade") as env:
        env = {**env, "RATE_LIMIT_ENABLED": "false"}
        t0 = time.perf_counter()
        info = seed(env, n)
        print(
            f"== regrade: {n:,} submissions x {N_QUESTIONS} questions ({N_OPTIONS} options, half "
            f"multiple-answer); seeded in {time.perf_counter() - t0:.1f} s =="
        )
        test_id = info["test_id"]
        original = fingerprint(env, test_id)
        headers = token_for(env, info["teacher"])
        with celery_worker(env, queues="default", concurrency=2), gunicorn(env, workers=1) as base:
            # Not timed: a dry run warms up the API worker, the Celery children and the
            # database's buffers, as on a server that has been up for a while.
            warm, _ = worker_regrade(base, headers, test_id, dry_run=True)
            print(f"  (warm-up: a dry run of the unchanged key, {warm:.2f} s)")
            edit_key(env, info, forward=True)
            first, job = worker_regrade(base, headers, test_id)
            edited = fingerprint(env, test_id)
            counts = {k: job["result"][k] for k in ("graded", "changed", "unchanged", "failed")}
            print(f"  worker, end to end (POST -> job succeeded)   {first:6.2f} s   {counts}")
            print(f"    phases (s): {job['phases']}")

            edit_key(env, info, forward=False)
            start = time.perf_counter()
            base_counts = orm_baseline(env, test_id)
            baseline = time.perf_counter() - start
            print(f"  baseline: per-row ORM loop, in process     {baseline:6.2f} s   {base_counts}")
            assert fingerprint(env, test_id) == original, "baseline disagrees with the seed"

            edit_key(env, info, forward=True)
            second, job = worker_regrade(base, headers, test_id)
            assert fingerprint(env, test_id) == edited, "the two worker runs disagree"
            counts = {k: job["result"][k] for k in ("graded", "changed", "unchanged", "failed")}
            print(f"  worker again, same edit                    {second:6.2f} s   {counts}")
            print(f"    phases (s): {job['phases']}")

            noop, job = worker_regrade(base, headers, test_id)
            counts = {k: job["result"][k] for k in ("graded", "changed", "unchanged", "failed")}
            print(f"  worker, nothing to change                  {noop:6.2f} s   {counts}")
            print(f"    phases (s): {job['phases']}")
            best = min(first, second)
            print(
                f"  speed-up over the ORM loop: {baseline / best:.1f}x "
                f"(best worker run {best:.2f} s; target < 20 s and >= 10x)"
            )
            print(f"  scores identical across implementations: yes ({edited})")


if __name__ == "__main__":
    main()
