"""Login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.password_workers import PasswordWorkers
from api.schemas.auth import TokenPair
from common.errors import Unauthorized
from common.models import AuthSession, User
from common.security import InvalidToken, decode_token, encode_token, verify_and_update
from common.settings import Settings


def _pair(settings: Settings, user: User, session: AuthSession) -> TokenPair:
    access, _ = encode_token(
        settings, user_id=user.id, role=user.role, session_id=session.id, typ="access"
    )
    refresh, _ = encode_token(
        settings,
        user_id=user.id,
        role=user.role,
        session_id=session.id,
        typ="refresh",
        jti=session.current_refresh_jti,
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_minutes * 60,
    )


async def login(
    *,
    session: AsyncSession,
    settings: Settings,
    hashing: PasswordWorkers,
    username: str,
    password: str,
) -> TokenPair:
    user = (
        await session.execute(select(User).where(func.lower(User.username) == username.lower()))
    ).scalar_one_or_none()
    # End the read before hashing: the connection goes back to the pool while the password
    # waits for (and runs on) a hashing worker. expire_on_commit=False keeps `user` loaded.
    await session.commit()
    # An unknown user is verified against a dummy hash, so timing tells no usernames.
    ok, new_hash = await hashing.run(
        verify_and_update, password, user.password_hash if user else None, settings
    )
    if user is None or not ok or not user.is_active:
        raise Unauthorized("incorrect username or password", code="invalid_credentials")
    if new_hash is not None:
        # Made with another algorithm or cost (PASSWORD_ARGON2_*): store the current one.
        user.password_hash = new_hash
    auth = AuthSession(
        id=uuid.uuid4(),
        user_id=user.id,
        current_refresh_jti=uuid.uuid4(),
        refresh_expires_at=datetime.now(UTC) + timedelta(days=settings.refresh_token_days),
    )
    session.add(auth)
    await session.commit()
    return _pair(settings, user, auth)


async def refresh(*, session: AsyncSession, settings: Settings, refresh_token: str) -> TokenPair:
    try:
        claims = decode_token(settings, refresh_token, expected="refresh")
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from exc
    # Lock the family row: two concurrent refreshes with one token must not both succeed.
    auth = (
        await session.execute(
            select(AuthSession).where(AuthSession.id == claims.sid).with_for_update()
        )
    ).scalar_one_or_none()
    if auth is None or auth.revoked_at is not None:
        raise Unauthorized("session revoked", code="invalid_token")
    if auth.current_refresh_jti != claims.jti:
        # A replaced refresh token came back: someone holds a stolen copy. End the family.
        auth.revoked_at = datetime.now(UTC)
        auth.revoked_reason = "refresh_reuse"
        await session.commit()
        raise Unauthorized("refresh token already used; session revoked", code="token_reused")
    user = await session.get(User, auth.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("user no longer exists", code="invalid_token")
    auth.current_refresh_jti = uuid.uuid4()
    auth.last_refreshed_at = datetime.now(UTC)
    auth.refresh_expires_at = datetime.now(UTC) + timedelta(days=settings.refresh_token_days)
    pair = _pair(settings, user, auth)
    await session.commit()
    return pair


async def logout(*, session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason="logout")
    )
    await session.commit()


async def revoke_all(*, session: AsyncSession, user_id: int, reason: str) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )
