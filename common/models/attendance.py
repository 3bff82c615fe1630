from __future__ import annotations

from sqlalchemy import CheckConstraint, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, Timestamps

ATTENDANCE_STATUSES = ("present", "absent", "late", "excused")


class Attendance(Timestamps, Base):
    __tablename__ = "attendance"
    __table_args__ = (
        # One record per student and test: a second check-in updates, never duplicates.
        UniqueConstraint("test_id", "user_id"),
        CheckConstraint("status IN ('present', 'absent', 'late', 'excused')", name="status"),
        CheckConstraint("method IN ('manual', 'face')", name="method"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    method: Mapped[str] = mapped_column(String(8), nullable=False, server_default="manual")
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    distance: Mapped[float | None] = mapped_column(Float)
