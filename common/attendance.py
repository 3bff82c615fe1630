"""Attendance rules that the API and the biometrics worker both apply, written once.

- When a student may check in by photo: from `early_seconds` before the test opens until it
  closes. The API refuses a photo outside that window (409) and the worker checks again when it
  records, so a check-in queued before the close and run after it records nothing.
- Which records a face match may write: a record an instructor or admin wrote by hand
  (`method = 'manual'`) stands; a check-in or a class photo never replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement

from common.models import Attendance

TEST_NOT_OPEN = "test_not_open"
MANUAL_RECORD = "manual_record"
MANUAL_RECORD_MESSAGE = (
    "an instructor or admin recorded this attendance by hand; the record was left as it was"
)


@dataclass(frozen=True)
class WindowRefusal:
    """Why a check-in is refused now: the error code, a message and its details."""

    code: str
    message: str
    details: dict[str, Any]


def check_in_refusal(
    *,
    opens_at: datetime | None,
    closes_at: datetime | None,
    now: datetime,
    early_seconds: int,
) -> WindowRefusal | None:
    """None when a check-in at `now` is inside the test's check-in window."""
    if opens_at is not None and now < opens_at - timedelta(seconds=early_seconds):
        starts = opens_at - timedelta(seconds=early_seconds)
        return WindowRefusal(
            TEST_NOT_OPEN,
            f"check-in opens {early_seconds} seconds before the test opens, at "
            f"{starts.isoformat()}",
            {"reason": "not_yet_open", "opens_at": opens_at.isoformat(),
             "check_in_opens_at": starts.isoformat()},
        )  # fmt: skip
    if closes_at is not None and now > closes_at:
        return WindowRefusal(
            TEST_NOT_OPEN,
            "the test is closed: check-in is over",
            {"reason": "closed", "closes_at": closes_at.isoformat()},
        )
    return None


def face_may_replace() -> ColumnElement[bool]:
    """SQL: may a face match overwrite the existing record (in the upsert's conflict clause)?"""
    return Attendance.method != "manual"
