"""When a student may start or submit an attempt: pure rules, no I/O.

The API's start and submit use cases load the test and the student's latest attempt, then ask
these functions what the request may do; any later path (GraphQL, a socket) asks the same.
What a student may *see* of a test lives beside this, in `common.exam_visibility`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from common.errors import Conflict, Forbidden
from common.models import Attempt, Exam


def check_window(test: Exam, now: datetime, grace_seconds: int) -> None:
    """403 before the test opens or after it closes (plus the grace period)."""
    if test.opens_at is not None and now < test.opens_at:
        raise Forbidden(
            "the test is not open yet",
            code="test_not_open",
            details={"opens_at": test.opens_at.isoformat()},
        )
    if test.closes_at is not None and now > test.closes_at + timedelta(seconds=grace_seconds):
        raise Forbidden(
            "the test is closed",
            code="test_closed",
            details={"closes_at": test.closes_at.isoformat()},
        )


def expired(attempt: Attempt, now: datetime, grace_seconds: int) -> bool:
    """Past its deadline and the grace period (late networks), so no longer open."""
    return attempt.deadline is not None and now > attempt.deadline + timedelta(
        seconds=grace_seconds
    )


def resumable(latest: Attempt | None, now: datetime, grace_seconds: int) -> Attempt | None:
    """The attempt a start request resumes instead of creating one, if any."""
    if (
        latest is not None
        and latest.submitted_at is None
        and not expired(latest, now, grace_seconds)
    ):
        return latest
    return None


def next_number(test: Exam, latest: Attempt | None) -> int:
    """The number of the student's next attempt; 409 when none is left."""
    number = (latest.number if latest else 0) + 1
    if number > test.attempts_allowed:
        raise Conflict(
            f"no attempts left (allowed: {test.attempts_allowed})",
            code="attempts_exhausted",
            details={"attempts_allowed": test.attempts_allowed},
        )
    return number


@dataclass(frozen=True, slots=True)
class SubmitSlot:
    """Where a submission goes: the open attempt it closes, or a new attempt `number`."""

    open_attempt: Attempt | None
    number: int


def submit_slot(
    test: Exam, latest: Attempt | None, now: datetime, grace_seconds: int
) -> SubmitSlot:
    """May this submission be recorded now, and as which attempt? Raises the refusal."""
    open_attempt = latest if latest is not None and latest.submitted_at is None else None
    if open_attempt is not None and expired(open_attempt, now, grace_seconds):
        raise Conflict(
            "the time for this attempt is up; the answers were not recorded",
            code="attempt_expired",
            details={"deadline": open_attempt.deadline.isoformat()},  # type: ignore[union-attr]
        )
    if test.time_limit_seconds and open_attempt is None:
        raise Conflict(
            "this test is timed: start an attempt first (POST /v1/tests/{id}/attempts)",
            code="no_open_attempt",
        )
    # An attempt with a deadline is bounded by it (deadlines never pass closes_at).
    if open_attempt is None or open_attempt.deadline is None:
        check_window(test, now, grace_seconds)
    if open_attempt is not None:
        return SubmitSlot(open_attempt, open_attempt.number)
    return SubmitSlot(None, next_number(test, latest))
