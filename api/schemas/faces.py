from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from common.models import FaceEnrollment


class FaceQualityOut(BaseModel):
    face_px: int = Field(description="Shorter side of the face box, in pixels")
    detector_score: float = Field(
        description="Face detector margin: ~1.5-2.5 for a clear frontal face, near 0 for a "
        "turned or blurred one"
    )


class FaceEnrollmentOut(BaseModel):
    """An enrollment's metadata. The face template itself is never returned."""

    id: int
    user_id: int
    model: str
    quality: FaceQualityOut
    status: Literal["pending", "approved", "rejected"] = Field(
        description="Only approved enrollments count for check-in and class photos"
    )
    reviewed_by: int | None = Field(
        description="Who approved or rejected it (or enrolled it for the student); null when "
        "approval was not required or the reviewer's account is gone"
    )
    reviewed_at: datetime | None = Field(description="When it was approved or rejected")
    photo_kept: bool = Field(
        description="The enrollment photo is stored: until the review decision, or for good "
        "under KEEP_FACE_PHOTOS"
    )
    created_at: datetime

    @classmethod
    def of(cls, row: FaceEnrollment) -> FaceEnrollmentOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            model=row.model,
            quality=FaceQualityOut(face_px=row.face_px, detector_score=row.detector_score),
            status=row.status,
            reviewed_by=row.reviewed_by,
            reviewed_at=row.reviewed_at,
            photo_kept=row.photo_id is not None,
            created_at=row.created_at,
        )
