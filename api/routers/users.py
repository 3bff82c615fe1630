from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import MAX_ID, DbSession, PageDep, Principal, ResourcesDep, UserIdPath, scoped
from api.errors import error_responses
from api.schemas.users import RoleName, UserCreate, UserOut, UserUpdate
from api.services import users as service
from common.cache import LISTS, test_scope

router = APIRouter(prefix="/users", tags=["users"])
ERRORS = error_responses(401, 403, 404)


@router.get(
    "",
    summary="List users",
    description="Admins list everyone; instructors list students. Paginated; the total is in "
    "`X-Total-Count`.",
    response_model=list[UserOut],
    responses=ERRORS,
)
async def list_users(
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Annotated[Principal, scoped("users:read")],
    role: Annotated[RoleName | None, Query(description="Only users with this role")] = None,
) -> list[UserOut]:
    users, total = await service.list_users(
        session=session, principal=principal, page=page, role=role
    )
    response.headers["X-Total-Count"] = str(total)
    return [UserOut.model_validate(u) for u in users]


@router.get(
    "/me",
    summary="Who am I",
    description="The authenticated user's own account.",
    response_model=UserOut,
    responses=ERRORS,
)
async def me(principal: Annotated[Principal, scoped("me")]) -> UserOut:
    return UserOut.model_validate(principal.user)


@router.get(
    "/{user_id}",
    summary="Read a user",
    description="Admins read anyone, instructors read students, everyone reads themselves.",
    response_model=UserOut,
    responses=ERRORS,
)
async def get_user(
    user_id: UserIdPath, session: DbSession, principal: Annotated[Principal, scoped("me")]
) -> UserOut:
    user = await service.get_user(session=session, principal=principal, user_id=user_id)
    return UserOut.model_validate(user)


@router.post(
    "",
    summary="Create a user",
    description="Admins create accounts of any role.",
    response_model=UserOut,
    status_code=201,
    responses={**ERRORS, **error_responses(409)},
)
async def create_user(
    body: UserCreate, session: DbSession, _: Annotated[Principal, scoped("users:write")]
) -> UserOut:
    return UserOut.model_validate(await service.create_user(session=session, data=body))


@router.put(
    "/{user_id}",
    summary="Update a user",
    description="Admins update anyone, including the role. Others update only themselves, "
    "never their role; changing one's own password needs `current_password` and ends every "
    "session of the account. Deactivating (`is_active: false`) removes access and keeps all "
    "data. Demoting or deactivating the last active admin: 409 `last_admin`.",
    response_model=UserOut,
    responses={**ERRORS, **error_responses(409)},
)
async def update_user(
    user_id: UserIdPath,
    body: UserUpdate,
    session: DbSession,
    principal: Annotated[Principal, scoped("me")],
) -> UserOut:
    user = await service.update_user(
        session=session, principal=principal, user_id=user_id, data=body
    )
    return UserOut.model_validate(user)


@router.delete(
    "/{user_id}",
    summary="Delete a user",
    description="Admins only. Erases the account with its own data: sessions, attempts, "
    "submissions, attendance records, face enrollments, files and task records (deleting a "
    "student erases that student's work for good; `is_active: false` is the non-destructive "
    "way to remove access). Tests and classes the user owns are never deleted with them: "
    "409 `user_owns_tests` (with the counts) unless `transfer_to` names an active instructor "
    "or admin, who takes them over in the same transaction, with the files the user attached "
    "to those tests and their unfinished jobs. A bad `transfer_to` is a 422 "
    "(`transfer_target_not_found`, `transfer_target_is_user`, "
    "`transfer_target_not_instructor`, `transfer_target_inactive`); a class name the new owner "
    "already uses, 409 `class_name_taken`. Deleting the last active admin, or yourself: 409.",
    status_code=204,
    responses={**ERRORS, **error_responses(409, 422)},
)
async def delete_user(
    user_id: UserIdPath,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("users:write")],
    transfer_to: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, description="Hand the user's tests and classes to this user"),
    ] = None,
) -> Response:
    moved = await service.delete_user(
        session=session, principal=principal, user_id=user_id, transfer_to=transfer_to
    )
    # The owner view of each moved test names its owner.
    await resources.cache.bump(*(test_scope(test_id) for test_id in moved), LISTS)
    return Response(status_code=204)
