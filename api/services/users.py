"""User management use cases. Access rules beyond scopes (who may see whom) live here, and so
do the two rules that keep an account change from losing anyone else's data:

- The last active admin stays: no delete, deactivation or demotion may leave zero active admins
  (409 `last_admin`). Every such change first locks the active admins' rows in id order
  (`_lock_active_admins`), so concurrent changes (two admins deleting each other) queue and
  the second one sees the first one's result.
- Deleting a user who owns tests or classes is refused (409 `user_owns_tests`) unless they
  are handed over in the same transaction to an active instructor or admin (`transfer_to`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Page, Principal
from api.schemas.users import UserCreate, UserUpdate
from api.services import auth as auth_service
from common.errors import Conflict, Forbidden, NotFound, Unprocessable
from common.models import Exam, Job, SchoolClass, StoredFile, SubmissionImport, User
from common.models.jobs import FINISHED_STATUSES
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


# --------------------------------------------------------------------------- the last admin


async def _lock_active_admins(session: AsyncSession) -> list[int]:
    """Lock the rows of every active admin, in id order, and return their ids.

    Every change that could remove an active admin takes these locks first, so such changes run
    one at a time; under READ COMMITTED, a waiter re-reads each row once it is free and skips
    rows deleted or no longer active admins, so its count is never stale.
    """
    rows = await session.scalars(
        select(User.id)
        .where(User.role == "admin", User.is_active)
        .order_by(User.id)
        .with_for_update()
    )
    return list(rows.all())


def _keep_an_admin(active_admins: Sequence[int], user: User, *, stays: bool) -> None:
    """409 when `user` is the last active admin and would stop being one (`stays` False)."""
    if not stays and user.id in active_admins and len(active_admins) <= 1:
        raise Conflict(
            "this is the last active admin: promote another admin first",
            code="last_admin",
            details={"user_id": user.id},
        )


async def _locked_users(session: AsyncSession, ids: Sequence[int]) -> dict[int, User]:
    """The users with these ids, row-locked in id order (so two requests naming the same users
    in a different order queue instead of deadlocking), read fresh from the database."""
    rows = await session.scalars(
        select(User)
        .where(User.id.in_(ids))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {user.id: user for user in rows.all()}


# --------------------------------------------------------------------------- use cases


async def update_user(
    *, session: AsyncSession, principal: Principal, user_id: int, data: UserUpdate
) -> User:
    if not (principal.is_admin or principal.id == user_id):
        raise NotFound("user not found")
    changes = data.model_dump(exclude_unset=True)
    admins: list[int] = []
    if principal.is_admin and (
        changes.get("role") not in (None, "admin") or changes.get("is_active") is False
    ):
        admins = await _lock_active_admins(session)  # before the user's row: one lock order
    user = (await _locked_users(session, [user_id])).get(user_id)
    if user is None:
        raise NotFound("user not found")
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
    if admins:
        _keep_an_admin(
            admins,
            user,
            stays=(changes.get("role") or user.role) == "admin"
            and (user.is_active if changes.get("is_active") is None else changes["is_active"]),
        )
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


def _heir(users: dict[int, User], user_id: int, heir_id: int) -> User:
    """The user named by `transfer_to`, if they may take over another user's tests."""
    heir = users.get(heir_id)
    problem: tuple[str, str] | None = None
    if heir_id == user_id:
        problem = ("transfer_target_is_user", "is the user being deleted")
    elif heir is None:
        problem = ("transfer_target_not_found", f"no user {heir_id}")
    elif heir.role not in ("instructor", "admin"):
        problem = ("transfer_target_not_instructor", "must be an instructor or an admin")
    elif not heir.is_active:
        problem = ("transfer_target_inactive", "is deactivated")
    if problem is not None:
        code, message = problem
        raise Unprocessable(
            f"transfer_to: {message}",
            code=code,
            details=[{"path": "transfer_to", "message": message}],
        )
    assert heir is not None
    return heir


async def _hand_over(session: AsyncSession, user_id: int, heir_id: int) -> list[int]:
    """Move `user_id`'s tests and classes to `heir_id`, with what hangs on them: files the user
    attached to those tests, their pending CSV imports and unfinished jobs. Returns the moved
    test ids. 409 `class_name_taken` when the heir already has a class of the same name."""
    clashes = (
        await session.scalars(
            select(SchoolClass.name)
            .where(
                SchoolClass.owner_id == user_id,
                SchoolClass.name.in_(
                    select(SchoolClass.name).where(SchoolClass.owner_id == heir_id)
                ),
            )
            .order_by(SchoolClass.name)
        )
    ).all()
    if clashes:
        raise Conflict(
            "the new owner already has classes with these names: rename them first",
            code="class_name_taken",
            details={"names": list(clashes)},
        )
    tests = list(
        (
            await session.scalars(
                update(Exam)
                .where(Exam.owner_id == user_id)
                .values(owner_id=heir_id)
                .returning(Exam.id)
            )
        ).all()
    )
    await session.execute(
        update(SchoolClass).where(SchoolClass.owner_id == user_id).values(owner_id=heir_id)
    )
    if tests:
        await session.execute(
            update(StoredFile)
            .where(StoredFile.owner_id == user_id, StoredFile.test_id.in_(tests))
            .values(owner_id=heir_id)
        )
        await session.execute(
            update(SubmissionImport)
            .where(SubmissionImport.owner_id == user_id, SubmissionImport.test_id.in_(tests))
            .values(owner_id=heir_id)
        )
        await session.execute(
            update(Job)
            .where(
                Job.owner_id == user_id,
                Job.status.not_in(FINISHED_STATUSES),
                Job.params["test_id"].as_integer().in_(tests),
            )
            .values(owner_id=heir_id)
        )
    return tests


async def delete_user(
    *, session: AsyncSession, principal: Principal, user_id: int, transfer_to: int | None
) -> list[int]:
    """Delete the user with their own data (sessions, submissions, attempts, attendance, face
    enrollments, files, task records). Their tests and classes are never deleted with them:
    without `transfer_to` that is a 409, with it they move to that user first, in the same
    transaction. Returns the ids of the tests that moved."""
    admins = await _lock_active_admins(session)
    users = await _locked_users(
        session, [user_id] if transfer_to is None else [user_id, transfer_to]
    )
    user = users.get(user_id)
    if user is None:
        raise NotFound("user not found")
    if user.id == principal.id:
        raise Conflict("you cannot delete your own account", code="cannot_delete_self")
    _keep_an_admin(admins, user, stays=False)
    moved: list[int] = []
    if transfer_to is not None:
        heir = _heir(users, user.id, transfer_to)
        moved = await _hand_over(session, user.id, heir.id)
    else:
        tests = await session.scalar(select(func.count()).where(Exam.owner_id == user.id))
        classes = await session.scalar(select(func.count()).where(SchoolClass.owner_id == user.id))
        if tests or classes:
            raise Conflict(
                f"this user owns {tests} test(s) and {classes} class(es): pass "
                "transfer_to={user_id} of an active instructor or admin to hand them over, "
                "or deactivate the account instead (is_active: false)",
                code="user_owns_tests",
                details={"tests": tests, "classes": classes},
            )
    # Their own sessions, enrollments, attempts, submissions, attendance, files and task
    # records go with them (ON DELETE CASCADE).
    await session.execute(delete(User).where(User.id == user.id))
    await session.commit()
    return moved
