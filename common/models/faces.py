"""Face enrollments (biometric templates) and uploaded face photos waiting for the worker.

Both are sensitive personal data. Encodings are 1024 bytes (common.faces.encoding_to_bytes) and
deferred, so a query never loads them unless it asks; the API never does. Photos travel from the
API to the worker through `face_photos` (never through the broker) and are deleted by the worker
when its job ends, unless KEEP_FACE_PHOTOS was set when they arrived, or the enrollment waits
for review (common/face_review.py): then its photo stays until the decision. Deleting a user
deletes both (ON DELETE CASCADE).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, CreatedAt

PHOTO_PURPOSES = ("enroll", "check_in", "class_photo")


class FacePhoto(CreatedAt, Base):
    __tablename__ = "face_photos"
    __table_args__ = (
        CheckConstraint("purpose IN ('enroll', 'check_in', 'class_photo')", name="purpose"),
        CheckConstraint("size_bytes = octet_length(data)", name="size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    # The person pictured (enrollment, check-in); NULL for a class photo.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    test_id: Mapped[int | None] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), index=True
    )
    uploaded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    # KEEP_FACE_PHOTOS as it was when the photo arrived: the policy the user uploaded under.
    keep: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)


class FaceEnrollment(CreatedAt, Base):
    __tablename__ = "face_enrollments"
    __table_args__ = (
        CheckConstraint("octet_length(encoding) = 1024", name="encoding_size"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        CheckConstraint("encoding IS NOT NULL OR status = 'rejected'", name="encoding_kept"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # 128 little-endian float64 values; never returned by the API, never logged. Dropped when
    # the enrollment is rejected (it is likely someone else's face).
    encoding: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    # pending -> approved | rejected (common/face_review.py); only approved ones are matched.
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    # Who approved or rejected it, and when; both NULL when approval was not required.
    reviewed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Encodings of different models must never be compared.
    model: Mapped[str] = mapped_column(String(64), nullable=False)
    # Quality: the face's size in pixels (shorter side of the detector's box) and the HOG
    # detector's margin (~1.5-2.5 for a clear frontal face, near 0 for a turned or blurred one).
    face_px: Mapped[int] = mapped_column(Integer, nullable=False)
    detector_score: Mapped[float] = mapped_column(Float, nullable=False)
    # The enrollment photo while it waits for review, or for good under KEEP_FACE_PHOTOS.
    photo_id: Mapped[int | None] = mapped_column(
        ForeignKey("face_photos.id", ondelete="SET NULL"), index=True
    )
