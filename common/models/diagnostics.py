from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, CreatedAt


class EchoRecord(CreatedAt, Base):
    """The diagnostic echo job's domain write: one row per successful run, so crash tests can
    count that a redelivered task wrote exactly once."""

    __tablename__ = "diagnostic_echoes"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    payload: Mapped[Any] = mapped_column(JSONB, nullable=True)
