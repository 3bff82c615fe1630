"""jobs: leases renewed by a heartbeat, so a lost worker's job is queued again within a minute

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column("jobs", sa.Column("lease_holder", sa.String(128)))
    op.add_column("jobs", sa.Column("queue_namespace", sa.String(64)))
    op.add_column("jobs", sa.Column("lost_runs", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(
        "ix_jobs_lease_expires_at",
        "jobs",
        ["lease_expires_at"],
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_lease_expires_at", table_name="jobs")
    op.drop_column("jobs", "lost_runs")
    op.drop_column("jobs", "queue_namespace")
    op.drop_column("jobs", "lease_holder")
    op.drop_column("jobs", "lease_expires_at")
