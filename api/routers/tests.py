from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field

from api.cache import respond
from api.deps import DbSession, PageDep, Principal, ResourcesDep, TestIdPath, scoped
from api.errors import error_responses
from api.schemas.tests import ExamCreate, ExamOut, ExamSummary, ExamTakerOut, ExamUpdate
from api.services import tests as service

router = APIRouter(prefix="/tests", tags=["tests"])
ERRORS = error_responses(401, 403, 404)

ExamView = Annotated[ExamOut | ExamTakerOut, Field(discriminator="view")]


@router.post(
    "",
    summary="Create a test",
    description="Instructors (and admins) author a test with its questions and options; the "
    "response has the whole test with server-assigned ids. Validation errors name the "
    "offending field, e.g. `questions[3].options`.",
    response_model=ExamOut,
    status_code=201,
    responses={**ERRORS, **error_responses(422)},
)
async def create_test(
    body: ExamCreate,
    session: DbSession,
    principal: Annotated[Principal, scoped("tests:write")],
) -> ExamOut:
    return await service.create_test(session=session, principal=principal, data=body)


@router.get(
    "",
    summary="List tests",
    description="Students see the published tests open to them (assigned to no class, or to "
    "a class of theirs), instructors their own, admins all. Paginated; the total is in "
    "`X-Total-Count`.",
    response_model=list[ExamSummary],
    responses=ERRORS,
)
async def list_tests(
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    page: PageDep,
    principal: Annotated[Principal, scoped("me")],
) -> Response:
    body, total = await service.list_tests_body(
        session=session, principal=principal, page=page, cache=resources.cache
    )
    response = respond(request, body)
    response.headers["X-Total-Count"] = str(total)
    return response


@router.get(
    "/{test_id}",
    summary="Read a test",
    description="The test with its questions and options. The owner (while an instructor) and "
    'admins get the key (`is_correct`) and settings (`"view": "owner"`); students get no key '
    'material (`"view": "taker"`), with questions in the order of their latest attempt when '
    "the test shuffles. Before `opens_at`, and on a timed test outside an attempt in progress, "
    "a student gets the metadata only: `questions: []`, with `withheld` saying why "
    "(`not_open`, `attempt_required`).",
    response_model=ExamView,
    responses=ERRORS,
)
async def read_test(
    test_id: TestIdPath,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("me")],
) -> Response:
    body = await service.read_test_body(
        session=session, principal=principal, test_id=test_id, cache=resources.cache
    )
    return respond(request, body)


@router.put(
    "/{test_id}",
    summary="Update a test",
    description="Owner or admin. Fields left out keep their values; `questions`, when given, "
    "is the new list: items with an `id` (or an unchanged text) keep their ids, others are "
    "added, missing ones removed. A change to the key of a test with submissions sets "
    "`needs_regrade` (start `POST /v1/tests/{id}/regrade`); changing the key while a "
    "regrade or import of the test runs answers 409.",
    response_model=ExamOut,
    responses={**ERRORS, **error_responses(409, 422)},
)
async def update_test(
    test_id: TestIdPath,
    body: ExamUpdate,
    session: DbSession,
    principal: Annotated[Principal, scoped("tests:write")],
) -> ExamOut:
    return await service.update_test(
        session=session, principal=principal, test_id=test_id, data=body
    )


@router.delete(
    "/{test_id}",
    summary="Delete a test",
    description="Owner or admin. Deletes the test with its questions, options, class "
    "assignments, attempts, submissions, pending imports and attendance records; task "
    "records of past jobs stay. A regrade or import still running for it then fails with "
    "`test_not_found` and writes nothing.",
    status_code=204,
    responses=ERRORS,
)
async def delete_test(
    test_id: TestIdPath,
    session: DbSession,
    principal: Annotated[Principal, scoped("tests:write")],
) -> Response:
    await service.delete_test(session=session, principal=principal, test_id=test_id)
    return Response(status_code=204)
