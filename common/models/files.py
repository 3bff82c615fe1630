"""Uploaded files: one row per stored blob, and the queue of blobs left to delete.

Deleting rows and deleting blobs cannot share a transaction, so blobs are removed through an
outbox: a trigger on `stored_files` (see migration 0004) records the key of every deleted row
in `file_deletions`, in the same transaction as the delete, whatever caused it (the files API,
or `ON DELETE CASCADE` from a deleted user). `common.files.purge_deleted_blobs` then deletes
those blobs and their tombstones; it runs after each API delete, after each scan job, and from
`python -m common.files purge`.

- owner_id: ON DELETE CASCADE. A deleted user's files go with the account; their blobs are
  queued for deletion by the trigger, so nothing is left dangling.
- test_id: ON DELETE SET NULL. The file belongs to the student, not to the test: deleting a
  test detaches the file (its instructors lose access) but never destroys a student's upload.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.models.base import Base, Timestamps
from common.models.jobs import Job

SCAN_STATUSES = ("pending", "clean", "rejected")
# What ClamAV said about a scanned file (NULL: not scanned yet, rejected before ClamAV saw it,
# or scanned before migration 0011 recorded it). See common.scanning.Verdict.virus_scan.
VIRUS_SCAN_RESULTS = ("clean", "infected", "skipped")

# Runs after every deleted stored_files row (created by migration 0004).
# Set only once scanned; "infected" only on a rejected file (migration 0011 creates it).
VIRUS_SCAN_CHECK = (
    "virus_scan IS NULL OR (virus_scan IN ('clean', 'infected', 'skipped') "
    "AND scan_status <> 'pending' AND (virus_scan <> 'infected' OR scan_status = 'rejected'))"
)

BLOB_DELETION_TRIGGER = "trg_stored_files_queue_blob_deletion"
BLOB_DELETION_FUNCTION = "stored_files_queue_blob_deletion"


class StoredFile(Timestamps, Base):
    __tablename__ = "stored_files"
    __table_args__ = (
        CheckConstraint("scan_status IN ('pending', 'clean', 'rejected')", name="scan_status"),
        CheckConstraint(
            VIRUS_SCAN_CHECK,
            name="virus_scan",
        ),
        CheckConstraint("size >= 1", name="size"),
        CheckConstraint("length(sha256) = 64", name="sha256"),
        Index("ix_stored_files_owner_id_created_at", "owner_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Server-generated storage key, also the public `filename`.
    key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Optional context: the instructors of this test may read the file.
    test_id: Mapped[int | None] = mapped_column(
        ForeignKey("tests.id", ondelete="SET NULL"), index=True
    )
    # The client's name, sanitized; metadata only, never used as a path.
    original_name: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Decided from the bytes at upload, never from the client's Content-Type.
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    scan_status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    scan_reason: Mapped[str | None] = mapped_column(String(200))
    scan_detail: Mapped[str | None] = mapped_column(String(500))
    virus_scan: Mapped[str | None] = mapped_column(String(16))
    scan_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    scanned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Lets one flush insert a new row and its scan job in dependency order (job first).
    scan_job: Mapped[Job | None] = relationship(lazy="raise")


class FileDeletion(Base):
    """A blob whose row is gone; filled by the trigger, emptied by purge_deleted_blobs."""

    __tablename__ = "file_deletions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
