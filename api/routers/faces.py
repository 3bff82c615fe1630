"""Face enrollment, check-in by photo and class photos. Face work runs on the biometrics worker;
these routes store the photo and answer 202 with the task to poll."""

from __future__ import annotations

from typing import Annotated, Literal

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
from api.multipart import multipart_body, read_upload
from api.responses import ACCEPTED_DOC, accepted
from api.schemas.faces import FaceEnrollmentOut
from api.services import faces as service

router = APIRouter(tags=["faces"])
ERRORS = error_responses(401, 403, 404)
UPLOAD_ERRORS = error_responses(400, 413, 415, 422, 503)
FaceIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Face enrollment id")]
PHOTO_DOC = "A JPEG, PNG, WebP, BMP, GIF or TIFF photo (size limit: FACE_UPLOAD_MAX_BYTES)"


async def _start(
    grant: service.PhotoGrant,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    principal: Principal,
) -> JSONResponse:
    """The photo is read only now that the service has granted the upload."""
    upload = await read_upload(
        request, field="file", max_bytes=resources.settings.face_upload_max_bytes
    )
    job = await service.start_photo_job(
        session=session, resources=resources, principal=principal, grant=grant, upload=upload
    )
    return accepted(job)


@router.post(
    "/users/{user_id}/faces",
    summary="Enroll a face",
    description="The student themself, an instructor of one of their classes or an admin "
    "uploads a photo of one person "
    "(multipart field `file`). The biometrics worker finds the face, encodes it and stores the "
    "template; the task's result is `{face_id, quality}`. The enrolled face is the largest one, "
    "at least 80 px (shorter side of the face box). The photo binds one identity: a second "
    "face at least half the size of the largest, or at least 50 px (the size a check-in "
    "accepts), whichever is smaller, fails the task with `multiple_faces`; smaller faces are "
    "background and ignored (in photos over 1600 px, faces under 1/40 of the longest side are "
    "not searched for). Other failures: `no_face`, `face_too_small`, `bad_image`, "
    "`image_too_large`. A student's own enrollment is `pending` (it does not count for check-in "
    "or class photos) until a reviewer approves it, and its photo is kept for the reviewer "
    "until the decision; one uploaded by a reviewer is approved at once (FACE_ENROLLMENT_APPROVAL "
    "off: every enrollment is). Otherwise the photo is not kept unless KEEP_FACE_PHOTOS is set.",
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
    principal: Annotated[Principal, scoped("me")],
) -> JSONResponse:
    grant = await service.authorize_enrollment(
        session=session, resources=resources, principal=principal, user_id=user_id
    )
    return await _start(grant, request, session, resources, principal)


@router.get(
    "/users/{user_id}/faces",
    summary="List face enrollments",
    description="The user's enrollments with their model, quality and review status "
    "(`pending`, `approved`, `rejected`; reviewer and decision time); never the face "
    "templates. The student themself, an instructor of one of their classes, or an admin.",
    response_model=list[FaceEnrollmentOut],
    responses=ERRORS,
)
async def list_faces(
    user_id: UserIdPath,
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Annotated[Principal, scoped("me")],
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


REVIEW_RULE = (
    "Reviewers: an admin, or an instructor of one of the student's classes (another "
    "instructor gets 403 `not_your_student`); never the student themself."
)


async def _decide(
    session: DbSession,
    principal: Principal,
    user_id: int,
    face_id: int,
    decision: Literal["approved", "rejected"],
) -> FaceEnrollmentOut:
    row = await service.decide_enrollment(
        session=session, principal=principal, user_id=user_id, face_id=face_id, decision=decision
    )
    return FaceEnrollmentOut.of(row)


@router.get(
    "/faces/pending",
    summary="Face enrollments waiting for your review",
    description="The pending enrollments of the students you review, oldest first: every "
    "student's for an admin, those of your classes' students for an instructor.",
    response_model=list[FaceEnrollmentOut],
    responses=ERRORS,
)
async def pending_faces(
    response: Response,
    session: DbSession,
    page: PageDep,
    principal: Annotated[Principal, scoped("faces:review")],
) -> list[FaceEnrollmentOut]:
    rows, total = await service.list_pending_reviews(
        session=session, principal=principal, page=page
    )
    response.headers["X-Total-Count"] = str(total)
    return [FaceEnrollmentOut.of(r) for r in rows]


@router.post(
    "/users/{user_id}/faces/{face_id}/approve",
    summary="Approve a face enrollment",
    description="A pending enrollment starts to count for check-in and class photos. Its "
    "photo is deleted (unless KEEP_FACE_PHOTOS). A decided enrollment answers 409 "
    "`already_decided`. " + REVIEW_RULE,
    response_model=FaceEnrollmentOut,
    responses={**ERRORS, **error_responses(409)},
)
async def approve_face(
    user_id: UserIdPath,
    face_id: FaceIdPath,
    session: DbSession,
    principal: Annotated[Principal, scoped("faces:review")],
) -> FaceEnrollmentOut:
    return await _decide(session, principal, user_id, face_id, "approved")


@router.post(
    "/users/{user_id}/faces/{face_id}/reject",
    summary="Reject a face enrollment",
    description="A pending enrollment never counts; its template and photo are deleted "
    "(the photo stays under KEEP_FACE_PHOTOS), its record stays with the decision, and it no "
    "longer uses up one of the student's FACE_MAX_ENROLLMENTS. A decided enrollment answers "
    "409 `already_decided`. " + REVIEW_RULE,
    response_model=FaceEnrollmentOut,
    responses={**ERRORS, **error_responses(409)},
)
async def reject_face(
    user_id: UserIdPath,
    face_id: FaceIdPath,
    session: DbSession,
    principal: Annotated[Principal, scoped("faces:review")],
) -> FaceEnrollmentOut:
    return await _decide(session, principal, user_id, face_id, "rejected")


@router.get(
    "/users/{user_id}/faces/{face_id}/photo",
    summary="Download an enrollment photo",
    description="The photo an enrollment was made from, as uploaded, for its reviewers to "
    "compare with the student: stored until the enrollment is approved or rejected (for good "
    "under KEEP_FACE_PHOTOS), 404 `photo_not_found` otherwise. " + REVIEW_RULE,
    response_class=Response,
    responses={
        200: {
            "description": "The photo (`application/octet-stream` when the type the "
            "uploader gave is not an image type)",
            "content": {"image/*": {}, "application/octet-stream": {}},
        },
        **ERRORS,
    },
)
async def face_photo(
    user_id: UserIdPath,
    face_id: FaceIdPath,
    session: DbSession,
    principal: Annotated[Principal, scoped("faces:review")],
) -> Response:
    photo = await service.enrollment_photo(
        session=session, principal=principal, user_id=user_id, face_id=face_id
    )
    media_type = photo.content_type or ""
    # The type is the uploader's claim: only image types are echoed.
    if not media_type.startswith("image/") or media_type == "image/svg+xml":
        media_type = "application/octet-stream"
    return Response(
        photo.data,
        media_type=media_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


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
    description="A student uploads a photo of their face (multipart field `file`); 409 "
    "`not_enrolled` at once without an approved enrollment (a pending one waits for its "
    "reviewer), and 409 `test_not_open` outside the check-in window (from "
    "CHECK_IN_EARLY_SECONDS before the test opens until it closes). The worker checks the "
    "window again when it records, then compares the photo with the student's approved "
    "enrollments: within FACE_TOLERANCE it records attendance `present` by face and the task's "
    "result is `{verified: true, distance, attendance_id, recorded: true}`; otherwise "
    "`{verified: false, distance, recorded: false, reason}` and nothing is written. A record an "
    "instructor or admin wrote by hand stands: the task then succeeds with `recorded: false, "
    "reason: manual_record`; a check-in run after the test closed gives `recorded: false, "
    "reason: test_not_open`. Unusable photos fail the task with the enrollment's codes. "
    "Checking in again updates the same record.",
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
    grant = await service.authorize_check_in(
        session=session, resources=resources, principal=principal, test_id=test_id
    )
    return await _start(grant, request, session, resources, principal)


@router.post(
    "/tests/{test_id}/attendance/photo",
    summary="Take attendance from a class photo",
    description="The test's instructor or an admin uploads a class photo (multipart field "
    "`file`). The worker matches every face against the students with an approved "
    "enrollment who may take the test, one face per student and one student per face "
    "(closest first), marks the matched students present, and reports "
    "`{matched: [{user_id, distance}], left_as_is, unknown_faces, faces}`; a matched student "
    "whose record was written by hand keeps it and is listed in `left_as_is` with "
    "`reason: manual_record`.",
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
    grant = await service.authorize_class_photo(
        session=session, principal=principal, test_id=test_id
    )
    return await _start(grant, request, session, resources, principal)
