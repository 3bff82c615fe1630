"""face_enrollments: review status (pending, approved, rejected), reviewer and decision time

Enrollments are vouched for from now on (common/face_review.py): a student's own enrollment is
pending until an instructor of one of their classes or an admin approves it, and only approved
ones are matched. The enrollments that exist were made under the old rule, when every one
counted at once: they become `approved`, with no reviewer and no decision time (as when
FACE_ENROLLMENT_APPROVAL is off), so no student loses their check-in with this upgrade. New
rows start `pending` unless the worker says otherwise. A rejected enrollment loses its template,
so the encoding becomes nullable (for rejected rows only).

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows are filled with 'approved' by the column's first default...
    op.add_column(
        "face_enrollments",
        sa.Column("status", sa.String(length=16), server_default="approved", nullable=False),
    )
    # ...and new ones start pending.
    op.alter_column("face_enrollments", "status", server_default="pending")
    op.add_column("face_enrollments", sa.Column("reviewed_by", sa.Integer(), nullable=True))
    op.add_column(
        "face_enrollments", sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_foreign_key(
        op.f("fk_face_enrollments_reviewed_by_users"),
        "face_enrollments",
        "users",
        ["reviewed_by"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_face_enrollments_reviewed_by"), "face_enrollments", ["reviewed_by"], unique=False
    )
    op.create_check_constraint(
        op.f("ck_face_enrollments_status"),
        "face_enrollments",
        "status IN ('pending', 'approved', 'rejected')",
    )
    op.alter_column("face_enrollments", "encoding", nullable=True)
    op.create_check_constraint(
        op.f("ck_face_enrollments_encoding_kept"),
        "face_enrollments",
        "encoding IS NOT NULL OR status = 'rejected'",
    )


def downgrade() -> None:
    # The old schema has no place for a rejected or pending enrollment: rejected ones (no
    # template left) are deleted, pending ones too, with the photos kept for their review.
    op.execute(
        "DELETE FROM face_photos WHERE keep IS FALSE AND id IN "
        "(SELECT photo_id FROM face_enrollments WHERE status = 'pending')"
    )
    op.execute("DELETE FROM face_enrollments WHERE status <> 'approved'")
    op.drop_constraint(op.f("ck_face_enrollments_encoding_kept"), "face_enrollments", type_="check")
    op.alter_column("face_enrollments", "encoding", nullable=False)
    op.drop_constraint(op.f("ck_face_enrollments_status"), "face_enrollments", type_="check")
    op.drop_index(op.f("ix_face_enrollments_reviewed_by"), table_name="face_enrollments")
    op.drop_constraint(
        op.f("fk_face_enrollments_reviewed_by_users"), "face_enrollments", type_="foreignkey"
    )
    op.drop_column("face_enrollments", "reviewed_at")
    op.drop_column("face_enrollments", "reviewed_by")
    op.drop_column("face_enrollments", "status")
