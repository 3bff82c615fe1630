"""initial schema: users, sessions, tests with questions and options, attendance

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("full_name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'instructor', 'student')", name=op.f("ck_users_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index(
        "uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("current_refresh_jti", sa.Uuid(), nullable=False),
        sa.Column("refresh_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"], unique=False)
    op.create_table(
        "tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("published", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "scoring_scheme", sa.String(length=16), server_default="all_or_nothing", nullable=False
        ),
        sa.Column("negative_fraction", sa.Float(), server_default="0", nullable=False),
        sa.Column("unanswered_mark", sa.Float(), server_default="0", nullable=False),
        sa.Column("time_limit_seconds", sa.Integer(), nullable=True),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts_allowed", sa.Integer(), server_default="1", nullable=False),
        sa.Column("shuffle_questions", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("shuffle_options", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "review_policy", sa.String(length=16), server_default="after_submit", nullable=False
        ),
        sa.Column("key_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("needs_regrade", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "review_policy IN ('never', 'after_submit', 'after_close')",
            name=op.f("ck_tests_review"),
        ),
        sa.CheckConstraint(
            "scoring_scheme IN ('all_or_nothing', 'partial', 'negative')",
            name=op.f("ck_tests_scoring_scheme"),
        ),
        sa.CheckConstraint("attempts_allowed >= 1", name=op.f("ck_tests_attempts_allowed")),
        sa.CheckConstraint(
            "negative_fraction >= 0 AND negative_fraction <= 1", name=op.f("ck_tests_negative")
        ),
        sa.CheckConstraint(
            "opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at",
            name=op.f("ck_tests_window"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_tests_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tests")),
    )
    op.create_index(op.f("ix_tests_owner_id"), "tests", ["owner_id"], unique=False)
    op.create_table(
        "attendance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), server_default="manual", nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("method IN ('manual', 'face')", name=op.f("ck_attendance_method")),
        sa.CheckConstraint(
            "status IN ('present', 'absent', 'late', 'excused')", name=op.f("ck_attendance_status")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.id"],
            name=op.f("fk_attendance_recorded_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"], ["tests.id"], name=op.f("fk_attendance_test_id_tests"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_attendance_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance")),
        sa.UniqueConstraint("test_id", "user_id", name=op.f("uq_attendance_test_id_user_id")),
    )
    op.create_index(op.f("ix_attendance_test_id"), "attendance", ["test_id"], unique=False)
    op.create_index(op.f("ix_attendance_user_id"), "attendance", ["user_id"], unique=False)
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("points", sa.Float(), server_default="1", nullable=False),
        sa.Column("multiple", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("scoring_scheme", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "scoring_scheme IS NULL OR scoring_scheme IN ('all_or_nothing', 'partial', 'negative')",
            name=op.f("ck_questions_scoring_scheme"),
        ),
        sa.CheckConstraint("points >= 0", name=op.f("ck_questions_points")),
        sa.ForeignKeyConstraint(
            ["test_id"], ["tests.id"], name=op.f("fk_questions_test_id_tests"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
    )
    op.create_index(op.f("ix_questions_test_id"), "questions", ["test_id"], unique=False)
    op.create_table(
        "options",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("is_correct", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_options_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_options")),
    )
    op.create_index(op.f("ix_options_question_id"), "options", ["question_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_options_question_id"), table_name="options")
    op.drop_table("options")
    op.drop_index(op.f("ix_questions_test_id"), table_name="questions")
    op.drop_table("questions")
    op.drop_index(op.f("ix_attendance_user_id"), table_name="attendance")
    op.drop_index(op.f("ix_attendance_test_id"), table_name="attendance")
    op.drop_table("attendance")
    op.drop_index(op.f("ix_tests_owner_id"), table_name="tests")
    op.drop_table("tests")
    op.drop_index(op.f("ix_auth_sessions_user_id"), table_name="auth_sessions")
    op.drop_table("auth_sessions")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_table("users")
