"""stored files and the blob deletion queue

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-28

`stored_files.owner_id` cascades on user deletion and `test_id` is set to NULL when a test is
deleted. A row delete cannot remove the blob itself, so a trigger records the key of every
deleted row in `file_deletions` (same transaction); `common.files.purge_deleted_blobs` deletes
the blobs listed there.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Integer(), nullable=True),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("scan_status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("scan_reason", sa.String(length=200), nullable=True),
        sa.Column("scan_detail", sa.String(length=500), nullable=True),
        sa.Column("scan_job_id", sa.Uuid(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "scan_status IN ('pending', 'clean', 'rejected')",
            name=op.f("ck_stored_files_scan_status"),
        ),
        sa.CheckConstraint("size >= 1", name=op.f("ck_stored_files_size")),
        sa.CheckConstraint("length(sha256) = 64", name=op.f("ck_stored_files_sha256")),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_stored_files_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["tests.id"],
            name=op.f("fk_stored_files_test_id_tests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scan_job_id"],
            ["jobs.id"],
            name=op.f("fk_stored_files_scan_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_files")),
        sa.UniqueConstraint("key", name=op.f("uq_stored_files_key")),
    )
    op.create_index(op.f("ix_stored_files_owner_id"), "stored_files", ["owner_id"], unique=False)
    op.create_index(op.f("ix_stored_files_test_id"), "stored_files", ["test_id"], unique=False)
    op.create_index(
        "ix_stored_files_owner_id_created_at",
        "stored_files",
        ["owner_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "file_deletions",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_file_deletions")),
    )
    op.execute(
        """
        CREATE FUNCTION stored_files_queue_blob_deletion() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO file_deletions (key) VALUES (OLD.key) ON CONFLICT (key) DO NOTHING;
            RETURN OLD;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_stored_files_queue_blob_deletion
        AFTER DELETE ON stored_files
        FOR EACH ROW EXECUTE FUNCTION stored_files_queue_blob_deletion()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_stored_files_queue_blob_deletion ON stored_files")
    op.execute("DROP FUNCTION IF EXISTS stored_files_queue_blob_deletion()")
    op.drop_table("file_deletions")
    op.drop_index("ix_stored_files_owner_id_created_at", table_name="stored_files")
    op.drop_index(op.f("ix_stored_files_test_id"), table_name="stored_files")
    op.drop_index(op.f("ix_stored_files_owner_id"), table_name="stored_files")
    op.drop_table("stored_files")
