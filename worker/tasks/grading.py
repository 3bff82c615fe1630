"""Bulk grading tasks: regrade every submission of a test, and import submissions from CSV.

Both score through `common.grading` on the key built by `common.grading.answer_key`, exactly as
the API does on submit, and write everything in the job's final transaction (`ctx.finish`), so
a crash or a redelivery never leaves half a regrade or half an import behind. The regrade's
engine (forked shards, COPY) is worker.regrade_engine; this task only adapts it to a job.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import JSON, Text, bindparam, cast, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session, selectinload

from common.grading import AnswerKey, GradedRow, answer_key, graded_row
from common.grading.lock import IMPORT_TASK, REGRADE_TASK
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
from worker.regrade_engine import MAX_REPORTED_ERRORS, scored_regrade
from worker.runtime import db

log = structlog.get_logger(__name__)
settings = get_settings()

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "soft_time_limit": settings.grading_task_soft_time_limit,
    "time_limit": settings.grading_task_time_limit,
}


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


def _regrade(ctx: JobContext) -> None:
    test_id, dry_run = int(ctx.params["test_id"]), bool(ctx.params.get("dry_run", False))
    with db().transaction() as session:
        test, key = _load_key(session, test_id)
        key_version = test.key_version
    with scored_regrade(db(), test_id, key, ctx.progress) as run, ctx.finish() as session:
        if not dry_run:
            _lock_same_key(session, test_id, key_version)
            run.write(session, key_version)
        summary = run.summary
        ctx.set_result(
            {
                "graded": summary.changed + summary.unchanged,
                "changed": summary.changed,
                "unchanged": summary.unchanged,
                "failed": summary.failed,
                "dry_run": dry_run,
                "key_version": key_version,
                "errors": summary.errors,
                "processes": summary.processes,
                "seconds": summary.seconds,
            }
        )
    log.info("regrade.done", test_id=test_id, changed=summary.changed, failed=summary.failed)


@app.task(name=REGRADE_TASK, **TASK_OPTIONS)
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
    inserts: list[tuple[tuple[int, int], GradedRow]] = []
    updates: list[tuple[int, float, GradedRow]] = []  # (submission, its old score, new grading)
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
        graded = graded_row(key, row.answers)
        if existing is not None:
            sid, old_answers, old_score, old_version = existing
            # Same answers graded with the same key: the same score and details.
            if old_answers == graded.answers and old_version == key_version:
                unchanged += 1
                continue
            updates.append((sid, old_score, graded))
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
        inserts.append((slot, graded))

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
        for (uid, number), graded in inserts:
            values.append(
                {
                    "test_id": test_id,
                    "user_id": uid,
                    "attempt_id": attempts[(uid, number)][0],
                    "attempt": number,
                    "answers": graded.answers,
                    "score": graded.result.score,
                    "max_score": graded.result.max_score,
                    "key_version": key_version,
                    "details_text": graded.details_text,
                    "source": "import",
                    "graded_at": now,
                }
            )
        # details: the exact text every writer stores (common.grading.GradedRow).
        session.execute(
            insert(Submission).values(details=cast(bindparam("details_text", type_=Text), JSON)),
            values,
        )
    for sid, old_score, graded in updates:
        session.execute(
            update(Submission)
            .where(Submission.id == sid)
            .values(
                answers=graded.answers,
                score=graded.result.score,
                max_score=graded.result.max_score,
                previous_score=old_score,
                details=cast(literal(graded.details_text, Text), JSON),
                key_version=key_version,
                source="import",
                graded_at=now,
                updated_at=now,
            )
        )
    return {"imported": len(inserts), "updated": len(updates), "unchanged": unchanged}


@app.task(name=IMPORT_TASK, **TASK_OPTIONS)
def import_submissions(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _import)
