"""Face enrollments are vouched for: the one place the review rules live.

- A student's own enrollment is `pending` until a reviewer approves or rejects it. One made for
  a student by a reviewer of that student is approved at once, by that reviewer. With
  FACE_ENROLLMENT_APPROVAL off (a deployment that enrolls in a supervised room) every
  enrollment is approved at once, with no reviewer.
- Reviewers of a student: an admin, or a user who currently holds the instructor role and owns
  a class the student belongs to. Never the student themself.
- Only approved enrollments are matched (check-in, class photos): `counts_for_matching()`.
  Rejected ones keep their record (who, when) but lose their template, and do not use up one of
  the FACE_MAX_ENROLLMENTS slots: `counts_toward_cap()`.
- A decision is final: deciding an enrollment that is not pending is a conflict.

The API (api/services/faces.py) and the worker (worker/tasks/faces.py) build their queries
from these clauses; both are plain SQL expressions, no I/O.
"""

from __future__ import annotations

from typing import Final, Literal

from sqlalchemy import ColumnElement, and_, exists, false, literal
from sqlalchemy.orm import QueryableAttribute

from common.models import ClassMember, FaceEnrollment, SchoolClass

Status = Literal["pending", "approved", "rejected"]
Decision = Literal["approved", "rejected"]
PENDING: Final = "pending"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"


def counts_for_matching() -> ColumnElement[bool]:
    """The enrollments a check-in or class photo is matched against."""
    return FaceEnrollment.status == APPROVED


def counts_toward_cap() -> ColumnElement[bool]:
    """The enrollments that use up one of a student's FACE_MAX_ENROLLMENTS slots."""
    return FaceEnrollment.status != REJECTED


def may_review(
    reviewer_id: int, reviewer_role: str, student_id: int | QueryableAttribute[int]
) -> ColumnElement[bool]:
    """SQL: may this user approve, reject and see the enrollment photos of `student_id` (a
    user id, or a column such as FaceEnrollment.user_id to filter a list)?"""
    student: ColumnElement[int] | QueryableAttribute[int] = (
        literal(student_id) if isinstance(student_id, int) else student_id
    )
    if reviewer_role == "admin":
        return student != reviewer_id
    if reviewer_role != "instructor":
        return false()
    return and_(
        student != reviewer_id,
        exists().where(
            ClassMember.user_id == student,
            ClassMember.class_id == SchoolClass.id,
            SchoolClass.owner_id == reviewer_id,
        ),
    )


def initial_status(*, approval_required: bool, vouched: bool) -> Status:
    """A new enrollment's status: `vouched` when a reviewer of the student uploaded it."""
    return APPROVED if vouched or not approval_required else PENDING
