from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import MAX_ID, DbSession, PageDep, Principal, scoped
from api.errors import error_responses
from api.schemas.attendance import (
    AttendanceCreate,
    AttendanceOut,
    AttendanceStatus,
    AttendanceUpdate,
)
from api.services import attendance as service
from common.errors import Forbidden

router = APIRouter(prefix="/attendance", tags=["attendance"])
ERRORS = error_responses(401, 403, 404)
AttendanceIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Attendance record id")]


async def attendance_reader(principal: Annotated[Principal, scoped("me")]) -> Principal:
    """Students read their own records (`attendance:self`), instructors those of their tests
    (`attendance:write`), admins all."""
    if not principal.scopes & {"attendance:self", "attendance:write"}:
        raise Forbidden(
            "you are not allowed to do this",
            details={"missing_scopes": ["attendance:self or attendance:write"]},
        )
    return principal


Reader = Annotated[Principal, Depends(attendance_reader)]
Writer = Annotated[Principal, scoped("attendance:write")]


@router.get(
    "",
    summary="List attendance records",
    description="Students see their own records, instructors those of the tests they own, "
    "admins all. Filter by test, user, status and time (`since` inclusive, `until` exclusive, "
    "on the record's `timestamp`; times without an offset are UTC). Oldest first, paginated; "
    "the total is in `X-Total-Count`.",
    response_model=list[AttendanceOut],
    responses={**ERRORS, **error_responses(422)},
)
async def list_attendance(
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Reader,
    test_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this test")] = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this user")] = None,
    status: Annotated[AttendanceStatus | None, Query(description="Only this status")] = None,
    since: Annotated[datetime | None, Query(description="Taken at or after")] = None,
    until: Annotated[datetime | None, Query(description="Taken before")] = None,
) -> list[AttendanceOut]:
    rows, total = await service.list_attendance(
        session=session,
        principal=principal,
        page=page,
        where=service.AttendanceFilter(
            test_id=test_id, user_id=user_id, status=status, since=since, until=until
        ),
    )
    response.headers["X-Total-Count"] = str(total)
    return [AttendanceOut.of(r) for r in rows]


@router.post(
    "",
    summary="Record attendance",
    description="The test's instructor or an admin records a student's status for a test by "
    "hand. One record per student and test: a second one is 409 (update the first instead).",
    response_model=AttendanceOut,
    status_code=201,
    responses={**ERRORS, **error_responses(409, 422)},
)
async def create_attendance(
    body: AttendanceCreate, session: DbSession, principal: Writer
) -> AttendanceOut:
    row = await service.create_attendance(session=session, principal=principal, data=body)
    return AttendanceOut.of(row)


@router.get(
    "/{attendance_id}",
    summary="Read an attendance record",
    description="Records the caller may not see answer 404.",
    response_model=AttendanceOut,
    responses=ERRORS,
)
async def get_attendance(
    attendance_id: AttendanceIdPath, session: DbSession, principal: Reader
) -> AttendanceOut:
    row = await service.get_attendance(
        session=session, principal=principal, attendance_id=attendance_id
    )
    return AttendanceOut.of(row)


@router.put(
    "/{attendance_id}",
    summary="Change an attendance status",
    description="The test's instructor or an admin sets the status by hand; the record becomes "
    "`manual`, recorded by the caller, without a face distance, and later check-ins and class "
    "photos leave it as it is. The body is `{status}` or the record as GET returns it with a "
    "new status: `id`, `test_id` and `user_id` must be the record's own (else 422 "
    "`immutable_field`); the other read-only fields are ignored.",
    response_model=AttendanceOut,
    responses={**ERRORS, **error_responses(422)},
)
async def update_attendance(
    attendance_id: AttendanceIdPath, body: AttendanceUpdate, session: DbSession, principal: Writer
) -> AttendanceOut:
    row = await service.update_attendance(
        session=session, principal=principal, attendance_id=attendance_id, data=body
    )
    return AttendanceOut.of(row)


@router.delete(
    "/{attendance_id}",
    summary="Delete an attendance record",
    description="The test's instructor or an admin.",
    status_code=204,
    responses=ERRORS,
)
async def delete_attendance(
    attendance_id: AttendanceIdPath, session: DbSession, principal: Writer
) -> Response:
    await service.delete_attendance(
        session=session, principal=principal, attendance_id=attendance_id
    )
    return Response(status_code=204)
