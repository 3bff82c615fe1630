"""Face enrollment, check-in by photo and class photos. Face work runs on the biometrics worker;
these routes store the photo and answer 202 with the task to poll."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from api.deps import (
    MAX_ID,
    DbSession,
    PageDep,
    Principal,
    ResourcesDep,
    TestIdPath,
    UserIdPath,
    scoped,
)
from api.errors import error_responses
from api.multipart import Upload, multipart_body, read_file_bytes
from api.responses import ACCEPTED_DOC, accepted
from api.schemas.faces import FaceEnrollmentOut
from api.services import faces as service

router = APIRouter(tags=["faces"])
ERRORS = error_responses(401, 403, 404)
UPLOAD_ERRORS = error_responses(400, 413, 415, 422, 503)
FaceIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Face enrollment id")]
PHOTO_DOC = "A JPEG, PNG, WebP, BMP, GIF or TIFF photo (size limit: FACE_UPLOAD_MAX_BYTES)"


def _reader(request: Request, resources: ResourcesDep) -> service.ReadUpload:
    async def read() -> Upload:
        return await read_file_bytes(
            request.stream(),
            request.headers.get("content-type"),
            request.headers.get("content-length"),
            field="file",
            max_bytes=resources.settings.face_upload_max_bytes,
        )

    return read


@router.post(
    "/users/{user_id}/faces",
    summary="Enroll a face",
    description="The student themself or an admin uploads a photo with exactly one face "
    "(multipart field `file`). The biometrics worker finds the face, encodes it and stores the "
    "template; the task's result is `{face_id, quality}`. It fails with `no_face`, "
    "`multiple_faces`, `face_too_small`, `bad_image` or `image_too_large`. The photo is not "
    "kept unless KEEP_FACE_PHOTOS is set.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **UPLOAD_ERRORS, **error_responses(409)},
    openapi_extra=multipart_body("file", PHOTO_DOC),
)
async def enroll_face(
    user_id: UserIdPath,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("faces:self")],
) -> JSONResponse:
    job = await service.start_enrollment(
        session=session,
        resources=resources,
        principal=principal,
        user_id=user_id,
        read_upload=_reader(request, resources),
    )
    return accepted(job)


@router.get(
    "/users/{user_id}/faces",
    summary="List face enrollments",
    description="The user's enrollments with their model and quality; never the face "
    "templates. The student themself or an admin.",
    response_model=list[FaceEnrollmentOut],
    responses=ERRORS,
)
async def list_faces(
    user_id: UserIdPath,
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Annotated[Principal, scoped("faces:self")],
) -> list[FaceEnrollmentOut]:
    rows, total = await service.list_enrollments(
        session=session, principal=principal, user_id=user_id, page=page
    )
    response.headers["X-Total-Count"] = str(total)
    return [FaceEnrollmentOut.of(r) for r in rows]


@router.delete(
    "/users/{user_id}/faces/{face_id}",
    summary="Delete a face enrollment",
    description="Removes the template (and its photo, if one was kept) for good.",
    status_code=204,
    responses=ERRORS,
)
async def delete_face(
    user_id: UserIdPath,
    face_id: FaceIdPath,
    session: DbSession,
    principal: Annotated[Principal, scoped("faces:self")],
) -> Response:
    await service.delete_enrollment(
        session=session, principal=principal, user_id=user_id, face_id=face_id
    )
    return Response(status_code=204)


@router.delete(
    "/users/{user_id}/faces",
    summary="Delete all face data",
    description="Removes every template and every stored photo of the user for good; "
    "enrollments and check-ins still waiting for the worker then fail with `photo_missing`.",
    status_code=204,
    responses=ERRORS,
)
async def delete_faces(
    user_id: UserIdPath,
    session: DbSession,
    principal: Annotated[Principal, scoped("faces:self")],
) -> Response:
    await service.delete_all_enrollments(session=session, principal=principal, user_id=user_id)
    return Response(status_code=204)


@router.post(
    "/tests/{test_id}/check-in",
    summary="Check in by photo",
    description="A student uploads a photo of their face (multipart field `file`); 409 at once "
    "without an enrollment, and 409 `test_not_open` outside the check-in window (from "
    "CHECK_IN_EARLY_SECONDS before the test opens until it closes). The worker checks the "
    "window again when it records, then compares the photo with the student's enrollments: "
    "within FACE_TOLERANCE it records attendance `present` by face and the task's result is "
    "`{verified: true, distance, attendance_id, recorded: true}`; otherwise `{verified: false, "
    "distance, recorded: false, reason}` and nothing is written. A record an instructor or "
    "admin wrote by hand stands: the task then succeeds with `recorded: false, reason: "
    "manual_record`; a check-in run after the test closed gives `recorded: false, reason: "
    "test_not_open`. Unusable photos fail the task with the enrollment's codes. Checking in "
    "again updates the same record.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **UPLOAD_ERRORS, **error_responses(409)},
    openapi_extra=multipart_body("file", PHOTO_DOC),
)
async def check_in(
    test_id: TestIdPath,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("attendance:self")],
) -> JSONResponse:
    job = await service.start_check_in(
        session=session,
        resources=resources,
        principal=principal,
        test_id=test_id,
        read_upload=_reader(request, resources),
    )
    return accepted(job)


@router.post(
    "/tests/{test_id}/attendance/photo",
    summary="Take attendance from a class photo",
    description="The test's instructor or an admin uploads a class photo (multipart field "
    "`file`). The worker matches every face against the enrolled students who may take the "
    "test, one face per student and one student per face (closest first), marks the matched "
    "students present, and reports `{matched: [{user_id, distance}], left_as_is, "
    "unknown_faces, faces}`; a matched student whose record was written by hand keeps it "
    "and is listed in `left_as_is` with `reason: manual_record`.",
    status_code=202,
    response_class=JSONResponse,
    responses={**ACCEPTED_DOC, **ERRORS, **UPLOAD_ERRORS},
    openapi_extra=multipart_body("file", "A class photo: " + PHOTO_DOC),
)
async def class_photo(
    test_id: TestIdPath,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Annotated[Principal, scoped("attendance:write")],
) -> JSONResponse:
    job = await service.start_class_photo(
        session=session,
        resources=resources,
        principal=principal,
        test_id=test_id,
        read_upload=_reader(request, resources),
    )
    return accepted(job)
