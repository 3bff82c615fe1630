"""Login sessions and their rotating refresh tokens.

A session is one token family: every refresh replaces the refresh token, and presenting a
replaced one again (token theft) revokes the session, which rejects its access tokens too.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, CreatedAt


class AuthSession(CreatedAt, Base):
    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # jti of the only refresh token that may still be used in this family.
    current_refresh_jti: Mapped[uuid.UUID] = mapped_column(nullable=False)
    refresh_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    last_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
