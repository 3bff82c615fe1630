"""Importing submissions from an uploaded CSV: the import task's engine.

    checked = check_import(database, test_id, text, key, progress)   # parse, resolve users
    with <the job's final transaction> as session:
        result = write_import(session, checked, key_version=..., attempts_allowed=...)

`check_import` reads only; `write_import` writes every row in the caller's transaction, graded
by `common.grading.graded_row` exactly as a submit is, and returns the job's result: counts and
the refused rows with their line and reason (the first MAX_REPORTED_ERRORS).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Text, bindparam, cast, func, insert, literal, select, update
from sqlalchemy.orm import Session

from common.db import SyncDatabase
from common.grading import AnswerKey, GradedRow, graded_row
from common.models import Attempt, ClassMember, ExamClass, Submission, User
from common.results_csv import ImportParser, ImportRow, RowError

MAX_REPORTED_ERRORS = 1000

Progress = Callable[[int, int], None]  # (done, total); may raise to stop the import


@dataclass
class CheckedImport:
    """The file parsed and its users resolved: the rows to write and the rows refused."""

    test_id: int
    key: AnswerKey
    rows: list[ImportRow]  # the good rows
    user_ids: dict[str, int]  # lower-cased username -> user id
    errors: list[dict[str, Any]]  # refused rows
    read: int  # data rows read


def check_import(
    database: SyncDatabase, test_id: int, text: str, key: AnswerKey, progress: Progress
) -> CheckedImport:
    """Parse the CSV against the key and resolve its users. Raises results_csv.HeaderError
    when the file as a whole cannot be imported."""
    parser = ImportParser(text, key)
    total_lines = max(0, text.count("\n"))
    progress(0, total_lines)
    parsed: list[ImportRow] = []
    errors: list[dict[str, Any]] = []
    for item in parser.rows():
        if isinstance(item, RowError):
            errors.append(_row_error(item))
        else:
            parsed.append(item)
        if (len(parsed) + len(errors)) % 5000 == 0:
            progress(min(len(parsed) + len(errors), total_lines), total_lines)
    read = len(parsed) + len(errors)
    with database.transaction() as session:
        user_ids, user_errors, rows = _resolve_users(session, test_id, parsed)
    progress(read, total_lines)
    return CheckedImport(test_id, key, rows, user_ids, errors + user_errors, read)


def write_import(
    session: Session, checked: CheckedImport, *, key_version: int, attempts_allowed: int
) -> dict[str, Any]:
    """Write the rows (graded with the key of `key_version`); the job's result."""
    errors = list(checked.errors)
    counts = _write_rows(
        session,
        checked.test_id,
        checked.key,
        key_version,
        attempts_allowed,
        checked.rows,
        checked.user_ids,
        errors,
    )
    errors.sort(key=lambda e: e["line"])
    return {
        "rows": checked.read,
        **counts,
        "failed": len(errors),
        "errors": errors[:MAX_REPORTED_ERRORS],
        "errors_truncated": len(errors) > MAX_REPORTED_ERRORS,
    }


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
        select(func.count()).select_from(ExamClass).where(ExamClass.test_id == test_id)
    )
    members: set[int] | None = None
    if assigned:
        members = set(
            session.scalars(
                select(ClassMember.user_id)
                .join(ExamClass, ExamClass.class_id == ClassMember.class_id)
                .where(ExamClass.test_id == test_id)
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


def _write_rows(
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
