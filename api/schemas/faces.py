from __future__ import annotations

from datetime import datetime

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
    photo_kept: bool
    created_at: datetime

    @classmethod
    def of(cls, row: FaceEnrollment) -> FaceEnrollmentOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            model=row.model,
            quality=FaceQualityOut(face_px=row.face_px, detector_score=row.detector_score),
            photo_kept=row.photo_id is not None,
            created_at=row.created_at,
        )
