"""Who may see what of a test, and when: the one home of these rules (no I/O).

Every path that renders a test, an attempt, a submission or a test's records asks here (the REST
services through `api.services.test_access`; later GraphQL and WebSocket the same way), so a
rule changes in one place and no route re-checks it.

- Managing a test (its key, every submission, results.csv, stats, regrade, imports, attached
  files) belongs to admins and to its owner *while the owner holds the instructor role*: a
  demoted instructor is a student, whoever wrote the test.
- Anyone else sees a published test open to them (assigned to no class, or to a class of theirs);
  a test they may not see does not exist for them (404).
- What of the paper they see depends on the time: before `opens_at`, the metadata only (title,
  description, window, time limit, question count, max score). A timed test shows its
  questions only inside an attempt in progress (started, not submitted, before its deadline),
  so nobody reads the paper first and starts the clock later. Never the key.
- Per-question results (points and correctness) follow the review policy: `after_submit`
  shows them, `after_close` once the test has closed and its submit grace period has passed
  (else a classmate's review could help a late submit), `never` never; the total score is
  always shown. Those who manage the test see everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import ColumnElement, and_, exists, false, or_, true

from common.models import Attempt, ClassMember, Exam, ExamClass

ADMIN = "admin"
INSTRUCTOR = "instructor"


class Viewer(Protocol):
    """Who is looking: an authenticated user's id and *current* role."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...


# --------------------------------------------------------------------------- managing


def manages(viewer: Viewer, owner_id: int | None) -> bool:
    """May `viewer` manage a test owned by `owner_id`? Admins always; the owner only while an
    instructor (ownership lapses with a demotion and returns with a promotion)."""
    if viewer.role == ADMIN:
        return True
    return viewer.role == INSTRUCTOR and owner_id is not None and owner_id == viewer.id


def manage_clause(viewer: Viewer) -> ColumnElement[bool]:
    """SQL form of `manages`: the tests `viewer` manages."""
    if viewer.role == ADMIN:
        return true()
    if viewer.role == INSTRUCTOR:
        return Exam.owner_id == viewer.id
    return false()


def visible_clause(viewer: Viewer) -> ColumnElement[bool]:
    """SQL: the tests `viewer` may see at all (and, with the `tests:take` scope, take).
    Instructors see only the tests they manage; students the published tests open to them."""
    if viewer.role in (ADMIN, INSTRUCTOR):
        return manage_clause(viewer)
    assigned = exists().where(ExamClass.test_id == Exam.id)
    member = exists().where(
        ExamClass.test_id == Exam.id,
        ClassMember.class_id == ExamClass.class_id,
        ClassMember.user_id == viewer.id,
    )
    return and_(Exam.published, or_(~assigned, member))


# --------------------------------------------------------------------------- the paper


class Paper(StrEnum):
    """How much of a test's paper a viewer gets."""

    KEY = "key"  # questions, options and the key: those who manage the test
    QUESTIONS = "questions"  # questions and options, no key
    NOT_OPEN = "not_open"  # metadata only: the test has not opened yet
    ATTEMPT_REQUIRED = "attempt_required"  # metadata only: timed, and no attempt in progress

    @property
    def shows_questions(self) -> bool:
        return self in (Paper.KEY, Paper.QUESTIONS)


def attempt_in_progress(attempt: Attempt | None, now: datetime) -> bool:
    """Started, not submitted, and before its deadline. The submission grace period is for a
    late network, not for reading: the questions go at the deadline itself."""
    if attempt is None or attempt.submitted_at is not None:
        return False
    return attempt.deadline is None or now <= attempt.deadline


def paper(viewer: Viewer, test: Exam, attempt: Attempt | None, now: datetime) -> Paper:
    """What of `test` `viewer` sees now; `attempt` is the viewer's latest attempt (or None)."""
    if manages(viewer, test.owner_id):
        return Paper.KEY
    if test.opens_at is not None and now < test.opens_at:
        return Paper.NOT_OPEN
    if test.time_limit_seconds and not attempt_in_progress(attempt, now):
        return Paper.ATTEMPT_REQUIRED
    return Paper.QUESTIONS


def needs_attempt(viewer: Viewer, test: Exam) -> bool:
    """Does `paper` depend on the viewer's attempt (so the caller must load it)?"""
    return not manages(viewer, test.owner_id) and bool(
        test.time_limit_seconds or test.shuffle_questions or test.shuffle_options
    )


# --------------------------------------------------------------------------- results


def review_allowed(viewer: Viewer, test: Exam, now: datetime, grace_seconds: int) -> bool:
    """May `viewer` see per-question results (points and correctness) of submissions to `test`?
    The total score is always shown to whoever may read the submission. `grace_seconds` is the
    submit grace period (`SUBMISSION_GRACE_SECONDS`): submits are accepted that long after the
    close, so `after_close` review starts only then."""
    if manages(viewer, test.owner_id):
        return True
    if test.review_policy == "after_submit":
        return True
    if test.review_policy == "after_close":
        return test.closes_at is not None and now > test.closes_at + timedelta(
            seconds=grace_seconds
        )
    return False
