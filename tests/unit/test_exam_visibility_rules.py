"""The pure rules of common.exam_visibility at their boundaries (the HTTP paths are tested in
tests/api/test_exam_visibility.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from common.exam_visibility import Paper, attempt_in_progress, manages, paper, review_allowed
from common.models import Attempt, Exam

NOW = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Viewer:
    id: int
    role: str


OWNER = 7


def exam(**kw) -> Exam:
    values = {"owner_id": OWNER, "time_limit_seconds": None, "opens_at": None, "closes_at": None}
    return Exam(**{**values, **kw})


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        (Viewer(OWNER, "instructor"), True),
        (Viewer(OWNER, "student"), False),  # demoted: the test is no longer theirs
        (Viewer(8, "instructor"), False),
        (Viewer(8, "admin"), True),
        (Viewer(OWNER, "admin"), True),
    ],
)
def test_manages_needs_the_role_as_well_as_the_ownership(viewer, expected):
    assert manages(viewer, OWNER) is expected


def test_paper_before_the_window_and_around_a_timed_attempt():
    student = Viewer(1, "student")
    later = exam(opens_at=NOW + timedelta(seconds=1))
    assert paper(student, later, None, NOW) is Paper.NOT_OPEN
    assert paper(Viewer(OWNER, "instructor"), later, None, NOW) is Paper.KEY
    assert paper(student, exam(opens_at=NOW), None, NOW) is Paper.QUESTIONS
    timed = exam(time_limit_seconds=600)
    assert paper(student, timed, None, NOW) is Paper.ATTEMPT_REQUIRED
    running = Attempt(deadline=NOW, submitted_at=None)
    assert paper(student, timed, running, NOW) is Paper.QUESTIONS  # up to the deadline itself
    assert paper(student, timed, running, NOW + timedelta(microseconds=1)) is (
        Paper.ATTEMPT_REQUIRED
    )
    done = Attempt(deadline=NOW + timedelta(minutes=5), submitted_at=NOW)
    assert paper(student, timed, done, NOW) is Paper.ATTEMPT_REQUIRED
    # An attempt never opens the paper before the window does.
    assert paper(student, exam(opens_at=NOW + timedelta(hours=1)), running, NOW) is (Paper.NOT_OPEN)
    assert not attempt_in_progress(None, NOW)
    assert attempt_in_progress(Attempt(deadline=None, submitted_at=None), NOW)


def test_review_after_close_waits_for_the_grace_period():
    student = Viewer(1, "student")
    test = exam(review_policy="after_close", closes_at=NOW)
    assert not review_allowed(student, test, NOW + timedelta(seconds=30), 30)
    assert review_allowed(student, test, NOW + timedelta(seconds=31), 30)
    assert not review_allowed(student, exam(review_policy="after_close"), NOW, 30)  # never closes
    assert not review_allowed(
        student, exam(review_policy="never", closes_at=NOW), NOW + timedelta(days=1), 0
    )
    assert review_allowed(student, exam(review_policy="after_submit"), NOW, 30)
    assert review_allowed(Viewer(OWNER, "instructor"), exam(review_policy="never"), NOW, 30)
    assert not review_allowed(Viewer(OWNER, "student"), exam(review_policy="never"), NOW, 30)
