"""Attempts at a test, submissions (answers with their grading) and uploaded CSV imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, CreatedAt, Timestamps


class Attempt(Base):
    """One try at a test. The unique (test, user, number) makes concurrent starts (or submits)
    of the same attempt collide in the database, so exactly one row is ever created."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("test_id", "user_id", "number"),
        CheckConstraint("number >= 1", name="number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Time limit (and close time) applied when it started; NULL when untimed.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Shuffled order fixed for this attempt: question ids, and option ids per question id.
    question_order: Mapped[list[int] | None] = mapped_column(JSONB)
    option_order: Mapped[dict[str, list[int]] | None] = mapped_column(JSONB)


class Submission(Timestamps, Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("test_id", "user_id", "attempt"),
        UniqueConstraint("attempt_id"),
        CheckConstraint("source IN ('api', 'import')", name="source"),
        # A test's submissions in id order: a regrade's id ranges and their bounds.
        Index("ix_submissions_test_id_id", "test_id", "id"),
        # Room in each page for the new versions of its rows: a regrade's UPDATE stays HOT
        # (no index writes) since it changes no indexed column. See migration 0007.
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    # {"question id": option id or [option ids]}, as validated on submit (answered questions
    # only). Plain JSON, kept as text: always read whole, never queried inside (see 0007).
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    max_score: Mapped[float] = mapped_column(Float, nullable=False)
    # The score before the last regrade or re-import that changed it.
    previous_score: Mapped[float | None] = mapped_column(Float)
    # The key version whose grading produced `score` and `details`.
    key_version: Mapped[int] = mapped_column(Integer, nullable=False)
    # [[question id, points, max points, state], ...] in key order; state is one of
    # c(orrect), p(artial), i(ncorrect), u(nanswered). Plain JSON: written often, never queried.
    details: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    source: Mapped[str] = mapped_column(String(8), nullable=False, server_default="api")
    graded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SubmissionImport(CreatedAt, Base):
    """An uploaded CSV waiting for the import job (the broker carries only its id)."""

    __tablename__ = "submission_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False, server_default="")
    content: Mapped[str] = mapped_column(Text, nullable=False)
