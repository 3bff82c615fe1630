from __future__ import annotations

import enum

from sqlalchemy import Boolean, CheckConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, Timestamps


class Role(enum.StrEnum):
    admin = "admin"
    instructor = "instructor"
    student = "student"


class User(Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Usernames are unique regardless of case: "Alice" and "alice" are one account.
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
        CheckConstraint("role IN ('admin', 'instructor', 'student')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    full_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
