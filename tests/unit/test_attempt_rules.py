"""The attempt rules (common.attempt_rules) at their boundaries: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from common import attempt_rules as rules
from common.errors import Conflict, Forbidden

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = 30


def exam(**kw):
    base = {"opens_at": None, "closes_at": None, "time_limit_seconds": None, "attempts_allowed": 1}
    return SimpleNamespace(**{**base, **kw})


def attempt(number=1, deadline=None, submitted_at=None):
    return SimpleNamespace(
        id=10 + number, number=number, deadline=deadline, submitted_at=submitted_at
    )


def refusal(fn, *args):
    with pytest.raises((Conflict, Forbidden)) as info:
        fn(*args)
    return info.value.code


def test_untimed_first_submission_is_a_new_attempt_inside_the_window():
    slot = rules.submit_slot(exam(), None, NOW, GRACE)
    assert slot.open_attempt is None and slot.number == 1


def test_window_and_its_grace_bound_an_untimed_submission():
    assert (
        refusal(rules.submit_slot, exam(opens_at=NOW + timedelta(seconds=1)), None, NOW, GRACE)
        == "test_not_open"
    )
    closed = exam(closes_at=NOW - timedelta(seconds=GRACE))
    assert rules.submit_slot(closed, None, NOW, GRACE).number == 1  # the grace's last second
    closed = exam(closes_at=NOW - timedelta(seconds=GRACE + 1))
    assert refusal(rules.submit_slot, closed, None, NOW, GRACE) == "test_closed"


def test_timed_test_needs_an_open_attempt_and_its_deadline_plus_grace():
    timed = exam(time_limit_seconds=600)
    assert refusal(rules.submit_slot, timed, None, NOW, GRACE) == "no_open_attempt"
    open_one = attempt(deadline=NOW - timedelta(seconds=GRACE))
    assert rules.submit_slot(timed, open_one, NOW, GRACE).open_attempt is open_one
    late = attempt(deadline=NOW - timedelta(seconds=GRACE + 1))
    assert refusal(rules.submit_slot, timed, late, NOW, GRACE) == "attempt_expired"


def test_attempts_are_counted():
    done = attempt(number=1, submitted_at=NOW - timedelta(minutes=1))
    assert (
        refusal(rules.submit_slot, exam(attempts_allowed=1), done, NOW, GRACE)
        == "attempts_exhausted"
    )
    assert rules.submit_slot(exam(attempts_allowed=2), done, NOW, GRACE).number == 2
    assert rules.next_number(exam(attempts_allowed=2), done) == 2


def test_a_start_resumes_only_an_open_unexpired_attempt():
    assert rules.resumable(None, NOW, GRACE) is None
    live = attempt(deadline=NOW + timedelta(minutes=5))
    assert rules.resumable(live, NOW, GRACE) is live
    assert rules.resumable(attempt(deadline=NOW - timedelta(seconds=GRACE + 1)), NOW, GRACE) is None
    assert rules.resumable(attempt(submitted_at=NOW), NOW, GRACE) is None
