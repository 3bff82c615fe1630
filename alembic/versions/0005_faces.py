"""faces: enrollments (128-d templates) and uploaded face photos awaiting the worker

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "face_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("test_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("keep", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "purpose IN ('enroll', 'check_in', 'class_photo')", name=op.f("ck_face_photos_purpose")
        ),
        sa.CheckConstraint("size_bytes = octet_length(data)", name=op.f("ck_face_photos_size")),
        sa.ForeignKeyConstraint(
            ["test_id"], ["tests.id"], name=op.f("fk_face_photos_test_id_tests"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"],
            ["users.id"],
            name=op.f("fk_face_photos_uploaded_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_face_photos_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_photos")),
    )
    op.create_index(op.f("ix_face_photos_test_id"), "face_photos", ["test_id"], unique=False)
    op.create_index(
        op.f("ix_face_photos_uploaded_by"), "face_photos", ["uploaded_by"], unique=False
    )
    op.create_index(op.f("ix_face_photos_user_id"), "face_photos", ["user_id"], unique=False)
    op.create_table(
        "face_enrollments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.LargeBinary(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("face_px", sa.Integer(), nullable=False),
        sa.Column("detector_score", sa.Float(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "octet_length(encoding) = 1024", name=op.f("ck_face_enrollments_encoding_size")
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["face_photos.id"],
            name=op.f("fk_face_enrollments_photo_id_face_photos"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_face_enrollments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_enrollments")),
    )
    op.create_index(
        op.f("ix_face_enrollments_photo_id"), "face_enrollments", ["photo_id"], unique=False
    )
    op.create_index(
        op.f("ix_face_enrollments_user_id"), "face_enrollments", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_face_enrollments_user_id"), table_name="face_enrollments")
    op.drop_index(op.f("ix_face_enrollments_photo_id"), table_name="face_enrollments")
    op.drop_table("face_enrollments")
    op.drop_index(op.f("ix_face_photos_user_id"), table_name="face_photos")
    op.drop_index(op.f("ix_face_photos_uploaded_by"), table_name="face_photos")
    op.drop_index(op.f("ix_face_photos_test_id"), table_name="face_photos")
    op.drop_table("face_photos")
