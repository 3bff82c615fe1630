"""Tests (exams), their questions and options."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.models.base import Base, Timestamps

SCORING_SCHEMES = ("all_or_nothing", "partial", "negative")
REVIEW_POLICIES = ("never", "after_submit", "after_close")


class Exam(Timestamps, Base):
    __tablename__ = "tests"
    __table_args__ = (
        CheckConstraint(
            "scoring_scheme IN ('all_or_nothing', 'partial', 'negative')", name="scoring_scheme"
        ),
        CheckConstraint("review_policy IN ('never', 'after_submit', 'after_close')", name="review"),
        CheckConstraint("attempts_allowed >= 1", name="attempts_allowed"),
        CheckConstraint("negative_fraction >= 0 AND negative_fraction <= 1", name="negative"),
        CheckConstraint(
            "opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at", name="window"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    published: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    scoring_scheme: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default="all_or_nothing"
    )
    negative_fraction: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    unanswered_mark: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    time_limit_seconds: Mapped[int | None] = mapped_column(Integer)
    opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts_allowed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    shuffle_questions: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    shuffle_options: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    review_policy: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default="after_submit"
    )
    # Bumped whenever the answer key changes; submissions keep the version that scored them.
    key_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    needs_regrade: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # Bumped on every edit (questions, options or settings): caches of the test key on it.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")

    questions: Mapped[list[Question]] = relationship(
        back_populates="test",
        order_by="Question.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (
        CheckConstraint("points >= 0", name="points"),
        CheckConstraint(
            "scoring_scheme IS NULL OR scoring_scheme IN ('all_or_nothing', 'partial', 'negative')",
            name="scoring_scheme",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    points: Mapped[float] = mapped_column(Float, nullable=False, server_default="1")
    multiple: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    scoring_scheme: Mapped[str | None] = mapped_column(String(16))

    test: Mapped[Exam] = relationship(back_populates="questions")
    options: Mapped[list[Option]] = relationship(
        back_populates="question",
        order_by="Option.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Option(Base):
    __tablename__ = "options"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    is_correct: Mapped[bool] = mapped_column(Boolean, nullable=False)

    question: Mapped[Question] = relationship(back_populates="options")
