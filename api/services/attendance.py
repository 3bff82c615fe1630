"""Attendance records by hand: who sees which records, who may write them.

Students see their own records, instructors the records of the tests they own, admins all.
Records taken by face are written by the biometrics worker (worker/tasks/faces.py); a record
written or changed here becomes `manual`, recorded by whoever changed it, and from then on stands
against check-ins and class photos (common.attendance.face_may_replace).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Page, Principal
from api.schemas.attendance import AttendanceCreate, AttendanceUpdate
from api.services import test_access
from common.errors import Conflict, NotFound, Unprocessable
from common.models import Attendance, ClassMember, Exam, ExamClass, User


@dataclass(frozen=True)
class AttendanceFilter:
    test_id: int | None = None
    user_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def visible(query: Select[Attendance], principal: Principal) -> Select[Attendance]:
    """Restrict a query on Attendance to the records the principal may read."""
    if principal.is_admin:
        return query
    if "attendance:write" in principal.scopes:
        return query.join(Exam, Exam.id == Attendance.test_id).where(Exam.owner_id == principal.id)
    return query.where(Attendance.user_id == principal.id)


async def may_take(session: AsyncSession, test_id: int, user_id: int) -> bool:
    """Is the student among those who may take the test: every student when it is assigned to
    no class, else the members of its classes?"""
    assigned = exists().where(ExamClass.test_id == test_id)
    member = exists().where(
        ExamClass.test_id == test_id,
        ClassMember.class_id == ExamClass.class_id,
        ClassMember.user_id == user_id,
    )
    return bool(await session.scalar(select(or_(~assigned, member))))


async def list_attendance(
    *, session: AsyncSession, principal: Principal, page: Page, where: AttendanceFilter
) -> tuple[Sequence[Attendance], int]:
    since, until = _utc(where.since), _utc(where.until)
    if since is not None and until is not None and since > until:
        raise Unprocessable(
            "since must not be later than until",
            details=[{"path": "since", "location": "query", "message": "later than until"}],
        )
    query = visible(select(Attendance), principal)
    if where.test_id is not None:
        query = query.where(Attendance.test_id == where.test_id)
    if where.user_id is not None:
        query = query.where(Attendance.user_id == where.user_id)
    if where.status is not None:
        query = query.where(Attendance.status == where.status)
    if since is not None:
        query = query.where(Attendance.created_at >= since)
    if until is not None:
        query = query.where(Attendance.created_at < until)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Attendance.created_at, Attendance.id).limit(page.limit).offset(page.offset)
    )
    return rows.all(), total or 0


async def get_attendance(
    *, session: AsyncSession, principal: Principal, attendance_id: int
) -> Attendance:
    row = await session.scalar(
        visible(select(Attendance), principal).where(Attendance.id == attendance_id)
    )
    if row is None:
        raise NotFound("attendance record not found")
    return row


async def _writable(session: AsyncSession, principal: Principal, attendance_id: int) -> Attendance:
    row = await session.scalar(
        visible(select(Attendance), principal)
        .where(Attendance.id == attendance_id)
        .with_for_update(of=Attendance)
    )
    if row is None:
        raise NotFound("attendance record not found")
    return row


async def create_attendance(
    *, session: AsyncSession, principal: Principal, data: AttendanceCreate
) -> Attendance:
    # The test's instructor or an admin; another instructor's test does not exist for them.
    try:
        await test_access.get_test(session, principal, data.test_id, manage=True)
    except NotFound:
        raise Unprocessable(
            "test_id: no such test among yours",
            code="test_not_found",
            details=[{"path": "test_id", "location": "body", "message": "no such test"}],
        ) from None
    user = await session.get(User, data.user_id)
    if user is None or user.role != "student":
        raise Unprocessable(
            "user_id: no such student",
            code="student_not_found",
            details=[{"path": "user_id", "location": "body", "message": "no such student"}],
        )
    if not await may_take(session, data.test_id, data.user_id):
        raise Unprocessable(
            "user_id: the student is in none of the test's classes",
            code="student_not_eligible",
            details=[
                {"path": "user_id", "location": "body", "message": "not in the test's classes"}
            ],
        )
    existing = await session.scalar(
        select(Attendance.id).where(
            Attendance.test_id == data.test_id, Attendance.user_id == data.user_id
        )
    )
    if existing is not None:
        raise Conflict(
            "this student already has a record for this test: update it instead",
            code="attendance_exists",
            details={"id": existing},
        )
    row = Attendance(
        test_id=data.test_id,
        user_id=data.user_id,
        status=data.status,
        method="manual",
        recorded_by=principal.id,
    )
    session.add(row)
    await session.commit()  # a concurrent duplicate hits the unique constraint: 409
    await session.refresh(row)
    return row


def _same_record(row: Attendance, data: AttendanceUpdate) -> None:
    """PUT takes back what GET returned; it may not move the record elsewhere."""
    problems = [
        {
            "path": name,
            "location": "body",
            "message": f"is {current}: a record's {name} cannot change; delete it and record "
            "another instead",
        }
        for name, sent, current in (
            ("id", data.id, row.id),
            ("test_id", data.test_id, row.test_id),
            ("user_id", data.user_id, row.user_id),
        )
        if sent is not None and sent != current
    ]
    if problems:
        raise Unprocessable(
            f"{problems[0]['path']}: {problems[0]['message']}",
            code="immutable_field",
            details=problems,
        )


async def update_attendance(
    *, session: AsyncSession, principal: Principal, attendance_id: int, data: AttendanceUpdate
) -> Attendance:
    row = await _writable(session, principal, attendance_id)
    _same_record(row, data)
    # A status set by hand is a manual record of whoever set it; a face distance no longer
    # explains it.
    row.status = data.status
    row.method = "manual"
    row.distance = None
    row.recorded_by = principal.id
    await session.commit()
    await session.refresh(row)
    return row


async def delete_attendance(
    *, session: AsyncSession, principal: Principal, attendance_id: int
) -> None:
    row = await _writable(session, principal, attendance_id)
    await session.delete(row)
    await session.commit()
