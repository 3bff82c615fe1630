from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.deps import MAX_ID
from api.schemas.common import StrictModel
from common.models import Attendance

AttendanceStatus = Literal["present", "absent", "late", "excused"]
AttendanceMethod = Literal["manual", "face"]


class AttendanceCreate(StrictModel):
    test_id: int = Field(ge=1, le=MAX_ID)
    user_id: int = Field(ge=1, le=MAX_ID)
    status: AttendanceStatus


class AttendanceUpdate(StrictModel):
    """The record as GET returns it, with a new status. Only `status` is written: `id`,
    `test_id` and `user_id` must be the record's own (a record never moves to another test or
    student), and the other read-only fields are accepted and ignored (the server sets them)."""

    status: AttendanceStatus
    id: int | None = Field(None, ge=1, le=MAX_ID)
    test_id: int | None = Field(None, ge=1, le=MAX_ID)
    user_id: int | None = Field(None, ge=1, le=MAX_ID)
    timestamp: datetime | None = None
    method: AttendanceMethod | None = None
    recorded_by: int | None = None
    distance: float | None = None
    updated_at: datetime | None = None


class AttendanceOut(BaseModel):
    id: int
    test_id: int
    user_id: int
    status: AttendanceStatus
    timestamp: datetime = Field(description="When the record was first taken")
    method: AttendanceMethod = Field(description="`manual` (by hand) or `face` (by photo)")
    recorded_by: int | None = Field(description="Who recorded the current status")
    distance: float | None = Field(description="Face match distance when taken by face")
    updated_at: datetime = Field(description="When the record was last changed")

    @classmethod
    def of(cls, row: Attendance) -> AttendanceOut:
        return cls(
            id=row.id,
            test_id=row.test_id,
            user_id=row.user_id,
            status=row.status,
            timestamp=row.created_at,
            method=row.method,
            recorded_by=row.recorded_by,
            distance=row.distance,
            updated_at=row.updated_at,
        )
