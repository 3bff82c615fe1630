"""Bulk grading: regrade every submission of a test, and import submissions from CSV.

Both score with `common.grading.score` on the key from `common.gradebook.answer_key`, exactly
as the API does on submit, and write everything in the job's final transaction (`ctx.finish`),
so a crash or a redelivery never leaves half a regrade or half an import behind.

The regrade streams (id, answers, score, details) through server-side cursors in batches,
split into shards (ranges of submission ids) scored in parallel by forked processes, one per CPU
by default, and collects only the rows whose grading changed; the final transaction COPYs
them into a temporary table and applies them with one `UPDATE ... FROM`. Running it again
finds nothing to change and writes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import psycopg2
import structlog
from sqlalchemy import JSON, Text, bindparam, cast, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session, selectinload

from common.cache_invalidation import rows_written
from common.gradebook import (
    DetailsEncoder,
    answer_key,
    details_json,
    stored_answers,
)
from common.grading import AnswerKey, AnswerValidationError, score, score_json
from common.models import (
    Attempt,
    ClassMember,
    Question,
    Submission,
    SubmissionImport,
    Test,
    TestClass,
    User,
)
from common.results_csv import HeaderError, ImportParser, ImportRow, RowError
from common.settings import get_settings
from worker.app import app
from worker.jobs import JobCanceled, JobContext, JobFailed, run_job
from worker.runtime import db

log = structlog.get_logger(__name__)
settings = get_settings()

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "soft_time_limit": settings.grading_task_soft_time_limit,
    "time_limit": settings.grading_task_time_limit,
}
MAX_REPORTED_ERRORS = 1000


def _load_key(session: Session, test_id: int, *, lock: bool = False) -> tuple[Test, AnswerKey]:
    query = select(Test).where(Test.id == test_id)
    if lock:
        query = query.with_for_update()
    test = session.execute(query).scalar_one_or_none()
    if test is None:
        raise JobFailed("test_not_found", "The test no longer exists.")
    questions = session.scalars(
        select(Question)
        .where(Question.test_id == test_id)
        .options(selectinload(Question.options))
        .order_by(Question.position, Question.id)
    ).all()
    return test, answer_key(test, questions)


def _lock_same_key(session: Session, test_id: int, key_version: int) -> None:
    """In the final transaction: the test still exists and its key is the one we used."""
    current = session.execute(
        select(Test.key_version).where(Test.id == test_id).with_for_update()
    ).scalar_one_or_none()
    if current is None:
        raise JobFailed("test_not_found", "The test was deleted while the job ran.")
    if current != key_version:
        raise JobFailed("key_changed", "The test's key changed while the job ran; start it again.")


# --------------------------------------------------------------------------- regrade


def _copy_escape(text: str) -> str:
    # COPY's text format: backslash is the escape character; tabs and newlines never occur in
    # orjson output outside strings, and inside strings they are already escaped as \t, \n.
    return text.replace("\\", "\\\\")


@dataclass
class _Tally:
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: dict[str, Any]) -> None:
        self.changed += other["changed"]
        self.unchanged += other["unchanged"]
        self.failed += other["failed"]
        room = MAX_REPORTED_ERRORS - len(self.errors)
        self.errors.extend(other["errors"][: max(0, room)])


def _score_shard(
    conn: Any,
    key: AnswerKey,
    test_id: int,
    ids: tuple[int, int],
    batch: int,
    out: TextIO,
    on_batch: Callable[[int], None] | None = None,
) -> _Tally:
    """Score one shard (submission ids from ids[0] to ids[1], inclusive) of a test; write the
    rows whose grading changed to `out` as COPY text (id, score, details)."""
    tally = _Tally()
    encoder = DetailsEncoder(key)
    loads, encode, write = orjson.loads, encoder.encode, out.write
    grade = score_json
    # The loop allocates nothing that outlives a row except the COPY text: the cyclic
    # collector would only rescan the worker's heap again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # A named (server-side) cursor streams the rows instead of loading them all.
        cursor: Any = conn.cursor(name=f"regrade_{uuid.uuid4().hex}")
        cursor.itersize = batch
        cursor.execute(
            "SELECT id, answers::text, score, details::text FROM submissions"
            " WHERE test_id = %s AND id BETWEEN %s AND %s",
            (test_id, *ids),
        )
        while rows := cursor.fetchmany(batch):
            for submission_id, answers_text, old_score, details_text in rows:
                try:
                    result = grade(key, answers_text)
                except (AnswerValidationError, ValueError, TypeError, AttributeError) as exc:
                    tally.failed += 1
                    if len(tally.errors) < MAX_REPORTED_ERRORS:
                        tally.errors.append(
                            {"submission_id": submission_id, "reason": str(exc)[:200]}
                        )
                    continue
                details = encode(result)
                # Every writer stores details_json's exact text, so equal text is the common
                # unchanged case; rows written otherwise are compared by value.
                if result.score == old_score and (
                    details == details_text or loads(details) == loads(details_text)
                ):
                    tally.unchanged += 1
                    continue
                tally.changed += 1
                write(f"{submission_id}\t{result.score!r}\t{_copy_escape(details)}\n")
            if on_batch is not None:
                on_batch(len(rows))
        cursor.close()
        conn.rollback()
    finally:
        if gc_was_enabled:
            gc.enable()
    return tally


def _die_with_parent() -> None:
    """Linux: SIGKILL this process if its parent dies (a worker killed at its hard time
    limit must not leave shards running)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _libpq_url() -> str:
    url = db().engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _fork_shard(
    key: AnswerKey, test_id: int, shard: int, ids: tuple[int, int], batch: int, folder: str
) -> int:
    """Score a shard in a forked process (the machine's other cores); its COPY text and tally
    land in `folder`. The child opens its own connection and leaves with os._exit, so it never
    touches (or closes) the sockets it inherited."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _die_with_parent()
        conn = psycopg2.connect(_libpq_url())
        with open(os.path.join(folder, f"{shard}.copy"), "w") as out:
            tally = _score_shard(conn, key, test_id, ids, batch, out)
        with open(os.path.join(folder, f"{shard}.json"), "wb") as summary:
            summary.write(orjson.dumps(asdict(tally)))
        conn.close()
        code = 0
    except BaseException:  # noqa: S110 - the parent reports the failed shard
        pass
    finally:
        os._exit(code)


def _shards(rows: int) -> int:
    """Processes for `rows` submissions (an upper bound: the span of their ids)."""
    if settings.regrade_processes:
        return settings.regrade_processes
    # Automatic: one per CPU, and forking pays off only for bigger tests.
    return max(1, min(os.cpu_count() or 1, 8, rows // 5000 + 1))


def _id_ranges(low: int, high: int, shards: int) -> list[tuple[int, int]]:
    """Split [low, high] into `shards` contiguous id ranges: each shard then reads its own
    part of the table (through the primary key) instead of all of it."""
    span = (high - low + 1 + shards - 1) // shards or 1
    return [(low + k * span, min(high, low + (k + 1) * span - 1)) for k in range(shards)]


def _regrade(ctx: JobContext) -> None:
    test_id = int(ctx.params["test_id"])
    dry_run = bool(ctx.params.get("dry_run", False))
    batch = settings.regrade_batch_size
    with db().transaction() as session:
        test, key = _load_key(session, test_id)
        key_version = test.key_version
        # Instant through ix_submissions_test_id_id, unlike the count (a scan): the shards
        # start on these, and the count runs meanwhile for the progress figures.
        low, high = session.execute(
            select(func.min(Submission.id), func.max(Submission.id)).where(
                Submission.test_id == test_id
            )
        ).one()

    started = time.perf_counter()
    shards = _shards(high - low + 1 if low is not None else 0)
    ranges = _id_ranges(low or 0, high or 0, shards)
    folder = tempfile.mkdtemp(prefix="regrade-")
    children: dict[int, int] = {}  # pid -> shard
    stack = contextlib.ExitStack()
    try:
        for shard in range(1, shards):
            children[_fork_shard(key, test_id, shard, ranges[shard], batch, folder)] = shard
        with db().transaction() as session:
            total: int = session.execute(
                select(func.count()).select_from(Submission).where(Submission.test_id == test_id)
            ).scalar_one()
        ctx.progress(0, total)
        changes = stack.enter_context(open(os.path.join(folder, "0.copy"), "w+"))  # noqa: SIM115
        done = 0

        def report(rows: int) -> None:
            # Shards advance at about the same pace; the children's share is estimated.
            nonlocal done
            done += rows
            ctx.progress(min(total, done * shards), total)

        conn = db().engine.raw_connection()
        try:
            tally = _score_shard(conn, key, test_id, ranges[0], batch, changes, report)
        finally:
            conn.close()
        for pid, shard in list(children.items()):
            _, status = os.waitpid(pid, 0)
            del children[pid]
            summary = os.path.join(folder, f"{shard}.json")
            if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(summary):
                raise RuntimeError(f"regrade shard {shard} failed")
            with open(summary, "rb") as summary_file:
                tally.add(orjson.loads(summary_file.read()))
        ctx.progress(total, total)
        scored = time.perf_counter()
        ctx.set_result(
            {
                "graded": tally.changed + tally.unchanged,
                "changed": tally.changed,
                "unchanged": tally.unchanged,
                "failed": tally.failed,
                "dry_run": dry_run,
                "key_version": key_version,
                "errors": tally.errors,
                "processes": shards,
                "seconds": {"read_and_score": round(scored - started, 3)},
            }
        )
        with ctx.finish() as session:
            if not dry_run:
                _lock_same_key(session, test_id, key_version)
                if tally.changed:
                    files = [changes]
                    for k in range(1, shards):
                        path = os.path.join(folder, f"{k}.copy")
                        files.append(stack.enter_context(open(path)))  # noqa: SIM115
                    steps = _apply_changes(session, files, test_id, key_version)
                    # Raw SQL the session hooks cannot see: say what it wrote.
                    rows_written(session, "submissions", "update", test_id=test_id)
                    assert ctx._result is not None
                    ctx._result["seconds"].update(steps)
                session.execute(update(Test).where(Test.id == test_id).values(needs_regrade=False))
                assert ctx._result is not None
                ctx._result["seconds"]["write"] = round(time.perf_counter() - scored, 3)
    finally:
        stack.close()
        for pid in children:  # canceled or failed midway: stop the other shards
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        shutil.rmtree(folder, ignore_errors=True)
    log.info(
        "regrade.done",
        test_id=test_id,
        changed=tally.changed,
        unchanged=tally.unchanged,
        failed=tally.failed,
        processes=shards,
    )


def _apply_changes(
    session: Session, changes: Sequence[TextIO], test_id: int, key_version: int
) -> dict[str, float]:
    """COPY the changed rows into a temporary table, then one UPDATE ... FROM. Returns the
    seconds each step took."""
    cursor = session.connection().connection.cursor()
    try:
        start = time.perf_counter()
        cursor.execute(
            "CREATE TEMP TABLE regrade_changes (id integer, score double precision, details json)"
            " ON COMMIT DROP"
        )
        for part in changes:
            part.seek(0)
            cursor.copy_expert("COPY regrade_changes (id, score, details) FROM STDIN", part)
        cursor.execute("ANALYZE regrade_changes")
        copied = time.perf_counter()
        cursor.execute(
            "UPDATE submissions AS s SET previous_score = s.score, score = c.score,"
            " details = c.details, key_version = %s, graded_at = now(), updated_at = now()"
            " FROM regrade_changes AS c WHERE s.id = c.id AND s.test_id = %s",
            (key_version, test_id),
        )
        return {"copy": round(copied - start, 3), "update": round(time.perf_counter() - copied, 3)}
    finally:
        cursor.close()


@app.task(name="grading.regrade", **TASK_OPTIONS)
def regrade(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _regrade)


# --------------------------------------------------------------------------- import


def _drop_import(import_id: int) -> None:
    with db().transaction() as session:
        session.execute(delete(SubmissionImport).where(SubmissionImport.id == import_id))


def _row_error(error: RowError) -> dict[str, Any]:
    out: dict[str, Any] = {"line": error.line, "code": error.code, "reason": error.reason}
    if error.username:
        out["username"] = error.username
    return out


def _resolve_users(
    session: Session, test_id: int, rows: list[ImportRow]
) -> tuple[dict[str, int], list[dict[str, Any]], list[ImportRow]]:
    """Map usernames to students allowed to take the test; bad rows become errors."""
    names = sorted({row.username.lower() for row in rows})
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(names), 5000):
        chunk = names[start : start + 5000]
        for uid, username, role in session.execute(
            select(User.id, User.username, User.role).where(func.lower(User.username).in_(chunk))
        ):
            found[username.lower()] = (uid, role)
    assigned = session.scalar(
        select(func.count()).select_from(TestClass).where(TestClass.test_id == test_id)
    )
    members: set[int] | None = None
    if assigned:
        members = set(
            session.scalars(
                select(ClassMember.user_id)
                .join(TestClass, TestClass.class_id == ClassMember.class_id)
                .where(TestClass.test_id == test_id)
            ).all()
        )
    ids: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    good: list[ImportRow] = []
    for row in rows:
        entry = found.get(row.username.lower())
        if entry is None:
            errors.append(
                _row_error(RowError(row.line, "unknown_user", "no such user", row.username))
            )
        elif entry[1] != "student":
            errors.append(
                _row_error(
                    RowError(row.line, "not_a_student", f"the user is a {entry[1]}", row.username)
                )
            )
        elif members is not None and entry[0] not in members:
            errors.append(
                _row_error(
                    RowError(
                        row.line,
                        "not_assigned",
                        "the student is in none of the test's classes",
                        row.username,
                    )
                )
            )
        else:
            ids[row.username.lower()] = entry[0]
            good.append(row)
    return ids, errors, good


def _import(ctx: JobContext) -> None:
    import_id = int(ctx.params["import_id"])
    try:
        _import_body(ctx, import_id)
    except (JobFailed, JobCanceled):
        _drop_import(import_id)  # nothing was imported; do not keep the upload
        raise


def _import_body(ctx: JobContext, import_id: int) -> None:
    test_id = int(ctx.params["test_id"])
    with db().transaction() as session:
        pending = session.get(SubmissionImport, import_id)
        if pending is None:
            raise JobFailed("import_not_found", "The uploaded file is gone.")
        text = pending.content
        test, key = _load_key(session, test_id)
        key_version, attempts_allowed = test.key_version, test.attempts_allowed
    try:
        parser = ImportParser(text, key)
    except HeaderError as exc:
        raise JobFailed("invalid_csv", exc.message) from exc
    total_lines = max(0, text.count("\n"))
    ctx.progress(0, total_lines)
    parsed: list[ImportRow] = []
    errors: list[dict[str, Any]] = []
    for item in parser.rows():
        if isinstance(item, RowError):
            errors.append(_row_error(item))
        else:
            parsed.append(item)
        if (len(parsed) + len(errors)) % 5000 == 0:
            ctx.progress(min(len(parsed) + len(errors), total_lines), total_lines)
    del text
    parse_errors = len(errors)
    with db().transaction() as session:
        user_ids, user_errors, rows = _resolve_users(session, test_id, parsed)
    errors.extend(user_errors)
    ctx.progress(len(parsed) + len(errors) - len(user_errors), total_lines)

    with ctx.finish() as session:
        _lock_same_key(session, test_id, key_version)
        counts = _write_import(
            session, test_id, key, key_version, attempts_allowed, rows, user_ids, errors
        )
        errors.sort(key=lambda e: e["line"])
        ctx.set_result(
            {
                "rows": len(parsed) + parse_errors,
                **counts,
                "failed": len(errors),
                "errors": errors[:MAX_REPORTED_ERRORS],
                "errors_truncated": len(errors) > MAX_REPORTED_ERRORS,
            }
        )
        session.execute(delete(SubmissionImport).where(SubmissionImport.id == import_id))


def _write_import(
    session: Session,
    test_id: int,
    key: AnswerKey,
    key_version: int,
    attempts_allowed: int,
    rows: list[ImportRow],
    user_ids: dict[str, int],
    errors: list[dict[str, Any]],
) -> dict[str, int]:
    now = datetime.now(UTC)
    uids = sorted(set(user_ids.values()))
    attempts: dict[tuple[int, int], tuple[int, datetime | None]] = {}
    highest: dict[int, int] = defaultdict(int)
    submitted: dict[tuple[int, int], tuple[int, dict[str, Any], float, int]] = {}
    for start in range(0, len(uids), 5000):
        chunk = uids[start : start + 5000]
        for aid, uid, number, submitted_at in session.execute(
            select(Attempt.id, Attempt.user_id, Attempt.number, Attempt.submitted_at).where(
                Attempt.test_id == test_id, Attempt.user_id.in_(chunk)
            )
        ):
            attempts[(uid, number)] = (aid, submitted_at)
            highest[uid] = max(highest[uid], number)
        for sid, uid, number, answers, old_score, old_version in session.execute(
            select(
                Submission.id,
                Submission.user_id,
                Submission.attempt,
                Submission.answers,
                Submission.score,
                Submission.key_version,
            ).where(Submission.test_id == test_id, Submission.user_id.in_(chunk))
        ):
            submitted[(uid, number)] = (sid, answers, old_score, old_version)

    claimed: dict[tuple[int, int], int] = {}  # (user, attempt) -> line that took it
    new_attempts: list[dict[str, Any]] = []
    open_attempts: list[int] = []
    inserts: list[tuple[tuple[int, int], ImportRow, dict[str, Any]]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for row in rows:
        uid = user_ids[row.username.lower()]
        number = row.attempt if row.attempt is not None else highest[uid] + 1
        slot = (uid, number)
        if slot in claimed:
            errors.append(
                _row_error(
                    RowError(
                        row.line,
                        "duplicate_row",
                        f"attempt {number} of this student is already on line {claimed[slot]}",
                        row.username,
                    )
                )
            )
            continue
        existing = submitted.get(slot)
        if existing is None and number > attempts_allowed:
            errors.append(
                _row_error(
                    RowError(
                        row.line,
                        "attempts_exhausted",
                        f"attempt {number} is beyond the {attempts_allowed} the test allows",
                        row.username,
                    )
                )
            )
            continue
        claimed[slot] = row.line
        highest[uid] = max(highest[uid], number)
        answers = stored_answers(row.answers, key)
        if existing is not None:
            sid, old_answers, old_score, old_version = existing
            # Same answers graded with the same key: the same score and details.
            if old_answers == answers and old_version == key_version:
                unchanged += 1
                continue
            result = score(key, row.answers)
            updates.append(
                {
                    "sid": sid,
                    "answers": answers,
                    "score": result.score,
                    "max_score": result.max_score,
                    "previous_score": old_score,
                    "details": details_json(result),
                }
            )
            continue
        if slot in attempts:
            open_attempts.append(attempts[slot][0])
        else:
            new_attempts.append(
                {
                    "test_id": test_id,
                    "user_id": uid,
                    "number": number,
                    "started_at": now,
                    "submitted_at": now,
                }
            )
        inserts.append((slot, row, answers))

    if new_attempts:
        for aid, uid, number in session.execute(
            insert(Attempt).returning(Attempt.id, Attempt.user_id, Attempt.number),
            new_attempts,
        ):
            attempts[(uid, number)] = (aid, now)
    if open_attempts:
        session.execute(
            update(Attempt).where(Attempt.id.in_(open_attempts)).values(submitted_at=now)
        )
    if inserts:
        values = []
        for (uid, number), row, answers in inserts:
            result = score(key, row.answers)
            values.append(
                {
                    "test_id": test_id,
                    "user_id": uid,
                    "attempt_id": attempts[(uid, number)][0],
                    "attempt": number,
                    "answers": answers,
                    "score": result.score,
                    "max_score": result.max_score,
                    "key_version": key_version,
                    "details_text": details_json(result),
                    "source": "import",
                    "graded_at": now,
                }
            )
        # details: the exact text every writer stores (common.gradebook.details_json).
        session.execute(
            insert(Submission).values(details=cast(bindparam("details_text", type_=Text), JSON)),
            values,
        )
    for change in updates:
        session.execute(
            update(Submission)
            .where(Submission.id == change["sid"])
            .values(
                answers=change["answers"],
                score=change["score"],
                max_score=change["max_score"],
                previous_score=change["previous_score"],
                details=cast(literal(change["details"], Text), JSON),
                key_version=key_version,
                source="import",
                graded_at=now,
                updated_at=now,
            )
        )
    return {"imported": len(inserts), "updated": len(updates), "unchanged": unchanged}


@app.task(name="grading.import_submissions", **TASK_OPTIONS)
def import_submissions(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _import)
