"""Face enrollment, check-in by photo and class photos: the API's side.

The API never touches a face: it checks who may do what, stores the uploaded photo in
`face_photos` and enqueues a job on the biometrics queue whose params hold only ids. The worker
(worker/tasks/faces.py) decodes, encodes, matches, writes, and deletes the photo.

An upload is two calls, so that nothing of the body is read for a request that is refused:
an `authorize_*` function checks who may upload what (and ends that read-only transaction)
and returns a `PhotoGrant`; the route then reads the photo (api.multipart.read_upload) and
hands both to `start_photo_job`, which stores the photo and its job in one transaction.

Who may review (approve, reject, see the photo of) a student's enrollment, which enrollments
count and what a new one starts as: common/face_review.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from api.deps import Page, Principal
from api.multipart import Upload
from api.resources import Resources
from api.services import test_access
from common import face_review
from common.attendance import check_in_refusal
from common.errors import Conflict, Forbidden, NotFound, Unprocessable
from common.jobs import enqueue, test_subject
from common.models import FaceEnrollment, FacePhoto, Job, User


async def _face_owner(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """The user whose faces are managed: the caller themself, or anyone for an admin."""
    user = await session.get(User, user_id)
    if user is None or not (principal.is_admin or principal.id == user_id):
        raise NotFound("user not found")
    return user


async def _reviewed_student(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """The student whose enrollments `principal` reviews (face_review.may_review). A user an
    instructor cannot see (not a student) is not found; a student they do not teach is 403."""
    user = await session.get(User, user_id)
    visible = user is not None and (
        principal.is_admin or (principal.role == "instructor" and user.role == "student")
    )
    if user is None or not visible:
        raise NotFound("user not found")
    allowed = await session.scalar(
        select(face_review.may_review(principal.id, principal.role, user_id))
    )
    if not allowed:
        raise Forbidden(
            "only an instructor of one of the student's classes or an admin reviews their faces",
            code="not_your_student",
        )
    return user


async def _student_or_reviewer(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """Enrolling and listing: the student themself, or a reviewer of theirs."""
    if principal.id == user_id and "faces:self" in principal.scopes:
        return await _face_owner(session, principal, user_id)
    if "faces:review" in principal.scopes:
        return await _reviewed_student(session, principal, user_id)
    raise NotFound("user not found")


@dataclass(frozen=True)
class PhotoGrant:
    """A photo upload the caller was allowed to make (an `authorize_*` function checked it):
    what the photo is for and which job takes it. `start_photo_job` takes nothing else."""

    purpose: str
    kind: str
    user_id: int | None
    test_id: int | None
    subject: str


async def start_photo_job(
    *,
    session: AsyncSession,
    resources: Resources,
    principal: Principal,
    grant: PhotoGrant,
    upload: Upload,
) -> Job:
    """Store the photo and enqueue its job: one transaction, committed here."""
    photo = FacePhoto(
        purpose=grant.purpose,
        user_id=grant.user_id,
        test_id=grant.test_id,
        uploaded_by=principal.id,
        content_type=upload.content_type,
        size_bytes=len(upload.data),
        keep=resources.settings.keep_face_photos,
        data=upload.data,
    )
    session.add(photo)
    await session.flush()
    params: dict[str, int] = {"photo_id": photo.id}
    if grant.user_id is not None:
        params["user_id"] = grant.user_id
    if grant.test_id is not None:
        params["test_id"] = grant.test_id
    # The photo and the job commit together; the broker carries only the job id.
    job = await enqueue(
        session, resources.publisher, kind=grant.kind, owner_id=principal.id, params=params,
        subject=grant.subject,
    )  # fmt: skip
    await session.commit()
    return job


async def authorize_enrollment(
    *, session: AsyncSession, resources: Resources, principal: Principal, user_id: int
) -> PhotoGrant:
    user = await _student_or_reviewer(session, principal, user_id)
    if user.role != "student":
        raise Unprocessable("only students enroll a face", code="not_a_student")
    count = await session.scalar(
        select(func.count())
        .select_from(FaceEnrollment)
        .where(FaceEnrollment.user_id == user_id, face_review.counts_toward_cap())
    )
    limit = resources.settings.face_max_enrollments
    if (count or 0) >= limit:
        raise Conflict(
            f"at most {limit} face enrollments per user: delete one first",
            code="too_many_enrollments",
            details={"max_enrollments": limit},
        )
    await session.commit()  # no transaction stays open while the photo arrives
    return PhotoGrant("enroll", "faces.enroll", user_id, None, f"user:{user_id}")


async def list_enrollments(
    *, session: AsyncSession, principal: Principal, user_id: int, page: Page
) -> tuple[Sequence[FaceEnrollment], int]:
    await _student_or_reviewer(session, principal, user_id)
    query = select(FaceEnrollment).where(FaceEnrollment.user_id == user_id)
    return await _page(session, query, page)


async def _page(
    session: AsyncSession, query: Select[FaceEnrollment], page: Page
) -> tuple[Sequence[FaceEnrollment], int]:
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(FaceEnrollment.id).limit(page.limit).offset(page.offset)
    )
    return rows.all(), total or 0


async def _enrollment_for_update(
    session: AsyncSession, user_id: int, face_id: int
) -> FaceEnrollment | None:
    """One user's enrollment, locked for a change (a delete or a review decision)."""
    return await session.scalar(
        select(FaceEnrollment)
        .where(FaceEnrollment.id == face_id, FaceEnrollment.user_id == user_id)
        .with_for_update()
    )


async def delete_enrollment(
    *, session: AsyncSession, principal: Principal, user_id: int, face_id: int
) -> None:
    await _face_owner(session, principal, user_id)
    row = await _enrollment_for_update(session, user_id, face_id)
    if row is None:
        raise NotFound("face enrollment not found")
    if row.photo_id is not None:  # a photo kept with KEEP_FACE_PHOTOS goes with it
        await session.execute(delete(FacePhoto).where(FacePhoto.id == row.photo_id))
    await session.execute(delete(FaceEnrollment).where(FaceEnrollment.id == face_id))
    await session.commit()


async def decide_enrollment(
    *,
    session: AsyncSession,
    principal: Principal,
    user_id: int,
    face_id: int,
    decision: face_review.Decision,
) -> FaceEnrollment:
    """Approve or reject a pending enrollment, once. The photo it kept for the reviewer goes
    with the decision (unless it arrived under KEEP_FACE_PHOTOS); a rejected enrollment also
    loses its template."""
    await _reviewed_student(session, principal, user_id)
    row = await _enrollment_for_update(session, user_id, face_id)
    if row is None:
        raise NotFound("face enrollment not found", code="face_not_found")
    if row.status != face_review.PENDING:
        raise Conflict(
            f"this enrollment was already {row.status}",
            code="already_decided",
            details={
                "status": row.status,
                "reviewed_by": row.reviewed_by,
                "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
            },
        )
    row.status = decision
    row.reviewed_by = principal.id
    row.reviewed_at = func.now()
    if decision == face_review.REJECTED:
        row.encoding = None
    if row.photo_id is not None:
        kept = await session.scalar(select(FacePhoto.keep).where(FacePhoto.id == row.photo_id))
        if not kept:
            await session.execute(delete(FacePhoto).where(FacePhoto.id == row.photo_id))
            row.photo_id = None
    await session.commit()
    await session.refresh(row)
    return row


async def list_pending_reviews(
    *, session: AsyncSession, principal: Principal, page: Page
) -> tuple[Sequence[FaceEnrollment], int]:
    """The pending enrollments `principal` may decide, oldest first."""
    query = select(FaceEnrollment).where(
        FaceEnrollment.status == face_review.PENDING,
        face_review.may_review(principal.id, principal.role, FaceEnrollment.user_id),
    )
    return await _page(session, query, page)


async def enrollment_photo(
    *, session: AsyncSession, principal: Principal, user_id: int, face_id: int
) -> FacePhoto:
    """The photo an enrollment was made from, for its reviewers, while it is stored."""
    await _reviewed_student(session, principal, user_id)
    photo = await session.scalar(
        select(FacePhoto)
        .join(FaceEnrollment, FaceEnrollment.photo_id == FacePhoto.id)
        .where(FaceEnrollment.id == face_id, FaceEnrollment.user_id == user_id)
        .options(undefer(FacePhoto.data))
    )
    if photo is None:
        raise NotFound(
            "no photo is stored for this enrollment: it is deleted once the enrollment is "
            "approved or rejected",
            code="photo_not_found",
        )
    return photo


async def delete_all_enrollments(
    *, session: AsyncSession, principal: Principal, user_id: int
) -> int:
    """Every template and every stored photo of the user, in one transaction.

    Photos first: a worker finishing an enrollment locks its photo, so this waits for it and
    the enrollment it committed is then deleted too; a worker that comes later finds its photo
    gone and fails the job (`photo_missing`) without writing.
    """
    await _face_owner(session, principal, user_id)
    await session.execute(delete(FacePhoto).where(FacePhoto.user_id == user_id))
    result = await session.execute(
        delete(FaceEnrollment).where(FaceEnrollment.user_id == user_id).returning(FaceEnrollment.id)
    )
    removed = len(result.all())
    await session.commit()
    return removed


async def authorize_check_in(
    *, session: AsyncSession, resources: Resources, principal: Principal, test_id: int
) -> PhotoGrant:
    # Only to a test the student may take (published, and open to every student or assigned to
    # one of their classes); others answer 404. Then only inside the check-in window (from
    # CHECK_IN_EARLY_SECONDS before the test opens until it closes): the worker checks it again.
    test = await test_access.get_test(session, principal, test_id)
    refusal = check_in_refusal(
        opens_at=test.opens_at,
        closes_at=test.closes_at,
        now=datetime.now(UTC),
        early_seconds=resources.settings.check_in_early_seconds,
    )
    if refusal is not None:
        raise Conflict(refusal.message, code=refusal.code, details=refusal.details)
    enrolled = await session.scalar(
        select(FaceEnrollment.id)
        .where(FaceEnrollment.user_id == principal.id, face_review.counts_for_matching())
        .limit(1)
    )
    if enrolled is None:
        pending = await session.scalar(
            select(func.count())
            .select_from(FaceEnrollment)
            .where(
                FaceEnrollment.user_id == principal.id,
                FaceEnrollment.status == face_review.PENDING,
            )
        )
        message = (
            "your face enrollment waits for an instructor's or an admin's approval"
            if pending
            else "you have no face enrollment: enroll a photo with POST /v1/users/{id}/faces first"
        )
        raise Conflict(message, code="not_enrolled", details={"pending_enrollments": pending or 0})
    await session.commit()
    return PhotoGrant("check_in", "faces.check_in", principal.id, test.id, test_subject(test.id))


async def authorize_class_photo(
    *, session: AsyncSession, principal: Principal, test_id: int
) -> PhotoGrant:
    # The test's instructor or an admin; another instructor's test answers 404.
    test = await test_access.get_test(session, principal, test_id, manage=True)
    await session.commit()
    return PhotoGrant("class_photo", "faces.class_photo", None, test.id, test_subject(test.id))
