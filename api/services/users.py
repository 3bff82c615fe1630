"""User management use cases. Access rules beyond scopes (who may see whom) live here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Page, Principal
from api.errors import Conflict, Forbidden, NotFound, Unprocessable
from api.schemas.users import UserCreate, UserUpdate
from api.services import auth as auth_service
from common.models import User
from common.security import hash_password, verify_password


def _visible(principal: Principal, user: User) -> bool:
    if principal.is_admin or principal.id == user.id:
        return True
    return principal.role == "instructor" and user.role == "student"


async def _username_taken(session: AsyncSession, username: str, *, except_id: int = 0) -> bool:
    found = await session.scalar(
        select(User.id).where(func.lower(User.username) == username.lower(), User.id != except_id)
    )
    return found is not None


async def list_users(
    *, session: AsyncSession, principal: Principal, page: Page, role: str | None
) -> tuple[Sequence[User], int]:
    query = select(User)
    if not principal.is_admin:
        # Instructors see students only.
        query = query.where(User.role == "student")
    if role is not None:
        query = query.where(User.role == role)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(User.id).limit(page.limit).offset(page.offset))
    return rows.all(), total or 0


async def get_user(*, session: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or not _visible(principal, user):
        raise NotFound("user not found")
    return user


async def create_user(*, session: AsyncSession, data: UserCreate) -> User:
    if await _username_taken(session, data.username):
        raise Conflict("username already taken", code="username_taken")
    user = User(
        username=data.username,
        password_hash=await asyncio.to_thread(hash_password, data.password),
        role=data.role,
        email=data.email,
        full_name=data.full_name,
    )
    session.add(user)
    await session.commit()
    return user


async def update_user(
    *, session: AsyncSession, principal: Principal, user_id: int, data: UserUpdate
) -> User:
    user = await session.get(User, user_id)
    if user is None or not (principal.is_admin or principal.id == user_id):
        raise NotFound("user not found")
    changes = data.model_dump(exclude_unset=True)
    if not principal.is_admin:
        if "role" in changes and changes["role"] != user.role:
            raise Forbidden("you cannot change your own role", code="role_change_forbidden")
        if "is_active" in changes:
            raise Forbidden("you cannot change your own account status")
    if "password" in changes and not principal.is_admin:
        current = changes.get("current_password")
        if not current or not await asyncio.to_thread(verify_password, current, user.password_hash):
            raise Unprocessable(
                "current_password is missing or wrong",
                code="current_password_invalid",
                details=[{"path": "current_password", "message": "does not match"}],
            )
    if "username" in changes and changes["username"] is not None:
        if await _username_taken(session, changes["username"], except_id=user.id):
            raise Conflict("username already taken", code="username_taken")
        user.username = changes["username"]
    if changes.get("password"):
        user.password_hash = await asyncio.to_thread(hash_password, changes["password"])
        # A new password ends every other session of the account.
        await auth_service.revoke_all(session=session, user_id=user.id, reason="password_change")
    if changes.get("role") is not None:
        user.role = changes["role"]
    for field in ("email", "full_name"):
        if field in changes:
            setattr(user, field, changes[field])
    if changes.get("is_active") is not None:
        user.is_active = changes["is_active"]
        if not user.is_active:
            await auth_service.revoke_all(session=session, user_id=user.id, reason="deactivated")
    await session.commit()
    await session.refresh(user)
    return user


async def delete_user(*, session: AsyncSession, principal: Principal, user_id: int) -> None:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    if user.id == principal.id:
        raise Conflict("you cannot delete your own account", code="cannot_delete_self")
    # Sessions, enrollments, submissions, attendance go with the user (ON DELETE CASCADE).
    await session.delete(user)
    await session.commit()
