from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from api.cache import respond
from api.deps import (
    MAX_ID,
    DbSession,
    PageDep,
    Principal,
    ResourcesDep,
    SettingsDep,
    TestIdPath,
    scoped,
)
from api.errors import error_responses
from api.multipart import multipart_body, read_upload
from api.responses import ACCEPTED_DOC, accepted
from api.schemas.submissions import (
    AttemptOut,
    StatsOut,
    SubmissionOut,
    SubmissionSummary,
    SubmitRequest,
    SubmitResult,
)
from api.services import submissions as service

router = APIRouter(tags=["submissions"])
ERRORS = error_responses(401, 403, 404)
SubmissionIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Submission id")]


@router.post(
    "/tests/{test_id}/attempts",
    summary="Start or resume an attempt",
    description="Starts the caller's next attempt (201) or returns the open one (200), with its "
    "deadline (null when the test has no time limit), the server's time and the questions in "
    "the attempt's order, fixed for the attempt when the test shuffles. Timed tests need an "
    "attempt before `submit`, and show their questions only while it runs (an attempt "
    "resumed after its deadline, within the submit grace period, has none). 403 outside the "
    "open/close window, 409 when no attempts are left. Concurrent starts create exactly one "
    "attempt.",
    response_model=AttemptOut,
    status_code=201,
    responses={**ERRORS, **error_responses(409), 200: {"model": AttemptOut}},
)
async def start_attempt(
    test_id: TestIdPath,
    response: Response,
    session: DbSession,
    settings: SettingsDep,
    principal: Annotated[Principal, scoped("tests:take")],
) -> AttemptOut:
    attempt, created = await service.start_attempt(
        session=session, principal=principal, settings=settings, test_id=test_id
    )
    response.status_code = 201 if created else 200
    return attempt


@router.post(
    "/tests/{test_id}/submit",
    summary="Submit answers",
    description="Scores the answers at once: `score` is the points earned; `details` has the "
    "maximum, the percentage and per question the points and correctness, both null unless "
    "the test's review policy allows (`after_submit`; `after_close` once the test has closed "
    "and the grace period for late submits has passed). Answers "
    "naming an unknown question, an option of another question, or several options for a "
    "single-answer question: 422, nothing stored. On a "
    "timed test, submit the open attempt before its deadline (plus a short grace period): "
    "409 afterwards, nothing stored. 403 outside the open/close window; 409 when no "
    "attempts are left.",
    response_model=SubmitResult,
    status_code=201,
    responses={**ERRORS, **error_responses(409, 422)},
)
async def submit(
    test_id: TestIdPath,
    body: SubmitRequest,
    response: Response,
    session: DbSession,
    settings: SettingsDep,
    principal: Annotated[Principal, scoped("tests:take")],
) -> SubmitResult:
    result = await service.submit(
        session=session,
        principal=principal,
        settings=settings,
        test_id=test_id,
        answers=body.answers,
    )
    response.headers["Location"] = f"/v1/submissions/{result.id}"
    return result


@router.get(
    "/tests/{test_id}/submissions",
    summary="List a test's submissions",
    description="The owner and admins see every submission (optionally one student's); a "
    "student sees their own. Paginated; the total is in `X-Total-Count`.",
    response_model=list[SubmissionSummary],
    responses=ERRORS,
)
async def list_submissions(
    test_id: TestIdPath,
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Annotated[Principal, scoped("me")],
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this user")] = None,
) -> list[SubmissionSummary]:
    items, total = await service.list_submissions(
        session=session, principal=principal, test_id=test_id, page=page, user_id=user_id
    )
    response.headers["X-Total-Count"] = str(total)
    return items


@router.get(
    "/submissions/{submission_id}",
    summary="Read a submission",
    description="Its answers and score; per-question points and correctness as the test's "
    "review policy allows (always for the test's owner and admins). The student who "
    "submitted it, the test's owner (while an instructor) and admins.",
    response_model=SubmissionOut,
    responses=ERRORS,
)
async def get_submission(
    submission_id: SubmissionIdPath,
    session: DbSession,
    settings: SettingsDep,
    principal: Annotated[Principal, scoped("me")],
) -> SubmissionOut:
    return await service.get_submission(
        session=session, principal=principal, settings=settings, submission_id=submission_id
    )


@router.post(
    "/tests/{test_id}/regrade",
    summary="Regrade every submission",
    description="Owner or admin. A background job scores every submission with the current "
    "key, keeps each changed submission's previous score, and ends with "
    "`{graded, changed, unchanged, failed}` (see `GET /v1/tasks/{task_id}`). `dry_run=true` "
    "reports the same without writing. Running it again changes nothing. 409 while a "
    "regrade or import of the test runs.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **error_responses(409, 503)},
)
async def regrade(
    test_id: TestIdPath,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("grading")],
    dry_run: Annotated[bool, Query(description="Report without writing")] = False,
) -> JSONResponse:
    job = await service.start_regrade(
        session=session,
        resources=resources,
        principal=principal,
        test_id=test_id,
        dry_run=dry_run,
    )
    return accepted(job)


@router.post(
    "/tests/{test_id}/submissions/import",
    summary="Import submissions from CSV",
    description="Owner or admin. Upload (multipart field `file`) a UTF-8 CSV: a `username` "
    "column, then one column per question id holding option ids separated by `|` (empty: "
    "unanswered); an optional `attempt` column replaces that attempt's submission instead of "
    "adding the next attempt. An export (`results.csv`) imports back as it is. The header is "
    "checked at once (422); a background job grades every row and reports each bad row with "
    "its line number and reason, without stopping the others.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **error_responses(400, 409, 413, 415, 422, 503)},
    openapi_extra=multipart_body("file", "The CSV file (size limit: SUBMISSION_IMPORT_MAX_BYTES)"),
)
async def import_submissions(
    test_id: TestIdPath,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("grading")],
) -> JSONResponse:
    grant = await service.authorize_import(session=session, principal=principal, test_id=test_id)
    upload = await read_upload(
        request, field="file", max_bytes=resources.settings.submission_import_max_bytes
    )
    job = await service.start_import(
        session=session, resources=resources, principal=principal, grant=grant, upload=upload
    )
    return accepted(job)


@router.get(
    "/tests/{test_id}/results.csv",
    summary="Export results as CSV",
    description="Owner or admin. One row per submission (`username, attempt, score, max_score, "
    "submitted_at`), then one column per question id with the chosen option ids separated "
    "by `|`. Importing it back reproduces the same scores.",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
async def export_results(
    test_id: TestIdPath,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("grading")],
) -> StreamingResponse:
    filename, chunks = await service.export_results(
        session=session, resources=resources, principal=principal, test_id=test_id
    )
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/tests/{test_id}/stats",
    summary="Test statistics",
    description="Owner or admin. Over each student's first attempt: count, mean, median, "
    "sample standard deviation, and per question the facility index and the discrimination "
    "index (correlation of the question's score with the rest of the test), as Moodle "
    "defines them, computed with the current key. Undefined values are null.",
    response_model=StatsOut,
    responses=ERRORS,
)
async def stats(
    test_id: TestIdPath,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("grading")],
) -> Response:
    body = await service.statistics_body(
        session=session, principal=principal, test_id=test_id, cache=resources.cache
    )
    return respond(request, body)
