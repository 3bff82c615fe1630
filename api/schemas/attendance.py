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
    status: AttendanceStatus


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
