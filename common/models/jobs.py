"""Background jobs: the source of truth for work done by the Celery workers.

The row's id is also the Celery task id, so a redelivered task finds its job and can tell
whether it already finished.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, CreatedAt

JOB_STATUSES = ("queued", "started", "progress", "retrying", "succeeded", "failed", "canceled")
FINISHED_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class Job(CreatedAt, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'started', 'progress', 'retrying', 'succeeded', 'failed', "
            "'canceled')",
            name="status",
        ),
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
        # The reaper's scan: only jobs that hold a lease, i.e. running ones.
        Index(
            "ix_jobs_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("lease_expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    progress_done: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    progress_total: Mapped[int | None] = mapped_column(Integer)
    # The task's arguments (ids, options); never file bytes or biometric data.
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(nullable=False, server_default="false")
    # Lets the same domain object refuse a second concurrent job (e.g. one regrade per test).
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The lease of the run in progress (common.job_leases): renewed by its process's heartbeat;
    # once it expires, a reaper counts the run as lost and queues the job again.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_holder: Mapped[str | None] = mapped_column(String(128))  # "host:pid" of that process
    # The broker key prefix the running worker consumed it from: a reaper re-publishes only
    # into its own prefix (deployments, or test sessions, that share a database).
    queue_namespace: Mapped[str | None] = mapped_column(String(64))
    lost_runs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
