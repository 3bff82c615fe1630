from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import MAX_ID, DbSession, PageDep, Principal, scoped
from api.errors import error_responses
from api.schemas.classes import ClassCreate, ClassOut, ClassSummary, ClassUpdate
from api.services import classes as service

router = APIRouter(prefix="/classes", tags=["classes"])
ERRORS = error_responses(401, 403, 404)
ClassIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Class id")]
Author = Annotated[Principal, scoped("tests:write")]


@router.post(
    "",
    summary="Create a class",
    description="An instructor groups students; `student_ids` must be students. Tests "
    "assigned to the class are visible to, and can be taken by, its members only.",
    response_model=ClassOut,
    status_code=201,
    responses={**ERRORS, **error_responses(409, 422)},
)
async def create_class(body: ClassCreate, session: DbSession, principal: Author) -> ClassOut:
    return await service.create_class(session=session, principal=principal, data=body)


@router.get(
    "",
    summary="List classes",
    description="Your classes (admins: all), with member counts. Paginated; the total is in "
    "`X-Total-Count`.",
    response_model=list[ClassSummary],
    responses=ERRORS,
)
async def list_classes(
    response: Response, session: DbSession, page: PageDep, principal: Author
) -> list[ClassSummary]:
    classes, total = await service.list_classes(session=session, principal=principal, page=page)
    response.headers["X-Total-Count"] = str(total)
    return classes


@router.get(
    "/{class_id}",
    summary="Read a class",
    description="The class with its members and the tests assigned to it. Owner or admin.",
    response_model=ClassOut,
    responses=ERRORS,
)
async def get_class(class_id: ClassIdPath, session: DbSession, principal: Author) -> ClassOut:
    return await service.get_class(session=session, principal=principal, class_id=class_id)


@router.put(
    "/{class_id}",
    summary="Update a class",
    description="Rename it, replace its members (`student_ids`), or add and remove some "
    "(`add_student_ids`, `remove_student_ids`). Owner or admin.",
    response_model=ClassOut,
    responses={**ERRORS, **error_responses(409, 422)},
)
async def update_class(
    class_id: ClassIdPath,
    body: ClassUpdate,
    session: DbSession,
    principal: Author,
) -> ClassOut:
    return await service.update_class(
        session=session, principal=principal, class_id=class_id, data=body
    )


@router.delete(
    "/{class_id}",
    summary="Delete a class",
    description="Owner or admin. 409 while tests are assigned to it: removing a test's last "
    "class would open that test to every student.",
    status_code=204,
    responses={**ERRORS, **error_responses(409)},
)
async def delete_class(class_id: ClassIdPath, session: DbSession, principal: Author) -> Response:
    await service.delete_class(session=session, principal=principal, class_id=class_id)
    return Response(status_code=204)
