"""Face jobs on the biometrics queue: enrollment, check-in by photo, class-photo attendance.

Each job's params hold ids only; the photo waits in `face_photos`. A job reads it, does the face
work outside any transaction, then writes its results, deletes the photo (unless it arrived
under KEEP_FACE_PHOTOS) and marks itself succeeded in one final transaction. A job that fails
(unusable photo, canceled, timed out, crashed) deletes the photo too; only a transient outage,
which is retried, leaves it for the next attempt. Neither encodings nor photo bytes are ever
logged or put in a job's params or result.

An enrollment's status (pending, or approved at once when a reviewer of the student uploaded
it or approval is off) and which enrollments are matched (approved ones): common/face_review.py.
A pending enrollment keeps its photo for the reviewer until the decision.

Photo problems fail the job with the pipeline's codes: bad_image, image_too_large, no_face,
multiple_faces, face_too_small. photo_missing: the photo was deleted meanwhile (with its user,
its test, or by DELETE /v1/users/{id}/faces).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common import face_review, faces
from common.attendance import (
    MANUAL_RECORD,
    MANUAL_RECORD_MESSAGE,
    WindowRefusal,
    check_in_refusal,
    face_may_replace,
)
from common.models import (
    Attendance,
    ClassMember,
    Exam,
    ExamClass,
    FaceEnrollment,
    FacePhoto,
    User,
)
from worker import face_pipeline as fp
from worker.app import app, settings
from worker.jobs import TRANSIENT_ERRORS, JobContext, JobFailed, run_job
from worker.runtime import db

log = structlog.get_logger(__name__)

# Photos of jobs that never ended (e.g. the database was down when they failed) are swept
# after this long by the next face job.
STALE_PHOTO_AGE = timedelta(hours=24)
TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "soft_time_limit": settings.face_task_soft_time_limit,
    "time_limit": settings.face_task_time_limit,
}

Body = Callable[[JobContext, int], None]


def _photo_job(body: Body) -> Callable[[JobContext], None]:
    """Run `body(ctx, photo_id)`; when the job ends without success, the photo goes too."""

    def run(ctx: JobContext) -> None:
        photo_id = int(ctx.params["photo_id"])
        try:
            body(ctx, photo_id)
        except TRANSIENT_ERRORS:
            raise  # retried: the next attempt needs the photo
        except BaseException:
            with contextlib.suppress(Exception), db().transaction() as session:
                session.execute(
                    delete(FacePhoto).where(FacePhoto.id == photo_id, FacePhoto.keep.is_(False))
                )
            raise

    return run


def _load_photo(photo_id: int) -> bytes:
    with db().transaction() as session:
        data = session.scalar(select(FacePhoto.data).where(FacePhoto.id == photo_id))
    if data is None:
        raise JobFailed("photo_missing", "The photo was deleted before it was processed.")
    return bytes(data)


class _Stages:
    """Milliseconds per stage of a face job, logged when it succeeds (no face data)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.ms: dict[str, int] = {}

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[f"{stage}_ms"] = round((now - self._last) * 1000)
        self._last = now


def _decode(photo_id: int, stages: _Stages) -> fp.RGBImage:
    data = _load_photo(photo_id)
    stages.mark("load")
    try:
        image = fp.decode_image(data, settings.face_max_image_pixels)
    except fp.FaceError as exc:
        raise JobFailed(exc.code, exc.message) from exc
    stages.mark("decode")
    return image


def _claim_photo(session: Session, photo_id: int) -> bool:
    """In the final transaction: lock the photo (a concurrent delete of the user's face data
    waits for this transaction, or wins and this job writes nothing). Returns whether the photo
    is to be kept."""
    keep = session.scalar(select(FacePhoto.keep).where(FacePhoto.id == photo_id).with_for_update())
    if keep is None:
        raise JobFailed("photo_missing", "The photo was deleted before it was processed.")
    return bool(keep)


def _release_photo(session: Session, photo_id: int, keep: bool) -> None:
    if not keep:
        session.execute(delete(FacePhoto).where(FacePhoto.id == photo_id))
    # Photos of jobs that never ended (e.g. the database was down when they failed); not the
    # photo of an enrollment waiting for review.
    session.execute(
        delete(FacePhoto).where(
            FacePhoto.keep.is_(False),
            FacePhoto.created_at < datetime.now(UTC) - STALE_PHOTO_AGE,
            ~exists().where(FaceEnrollment.photo_id == FacePhoto.id),
        )
    )


@dataclass(frozen=True)
class _Recorded:
    attendance_id: int
    written: bool  # False: a manual record was there and stands


def _record_present(
    session: Session, *, test_id: int, user_id: int, distance: float, recorded_by: int | None
) -> _Recorded:
    """Upsert `present` by face: one record per student and test, whatever the order, and
    never over a record written by hand.

    ON CONFLICT DO UPDATE locks the existing row and evaluates `face_may_replace` on its latest
    committed version, so a manual write that commits first always stands; one that comes later
    overwrites the face record, as it should.
    """
    values = {
        "status": "present",
        "method": "face",
        "distance": distance,
        "recorded_by": recorded_by,
    }
    stmt = (
        insert(Attendance)
        .values(test_id=test_id, user_id=user_id, **values)
        .on_conflict_do_update(
            index_elements=[Attendance.test_id, Attendance.user_id],
            set_={**values, "updated_at": func.now()},
            where=face_may_replace(),
        )
        .returning(Attendance.id)
    )
    written = session.execute(stmt).scalar_one_or_none()
    if written is not None:
        return _Recorded(int(written), True)
    # The conflicting row is locked by the statement above until this transaction ends.
    kept = session.execute(
        select(Attendance.id).where(Attendance.test_id == test_id, Attendance.user_id == user_id)
    ).scalar_one()
    return _Recorded(int(kept), False)


def _window_refusal(session: Session, test_id: int) -> WindowRefusal | None:
    """The API's check-in window rule, again at the time the worker records."""
    # No row lock: deleting the test locks it, then the photo this job holds (a deadlock).
    row = session.execute(
        select(Exam.opens_at, Exam.closes_at).where(Exam.id == test_id)
    ).one_or_none()
    if row is None:
        raise JobFailed("test_not_found", "The test was deleted.")
    return check_in_refusal(
        opens_at=row.opens_at,
        closes_at=row.closes_at,
        now=datetime.now(UTC),
        early_seconds=settings.check_in_early_seconds,
    )


def _require_test(session: Session, test_id: int) -> None:
    if session.scalar(select(Exam.id).where(Exam.id == test_id)) is None:
        raise JobFailed("test_not_found", "The test was deleted.")


def _enrollments(session: Session, user_ids: list[int] | None) -> dict[int, list[bytes]]:
    """Approved encodings of the current model, by user; all active students when None."""
    query = (
        select(FaceEnrollment.user_id, FaceEnrollment.encoding)
        .join(User, User.id == FaceEnrollment.user_id)
        .where(
            face_review.counts_for_matching(),
            FaceEnrollment.model == fp.MODEL_NAME,
            User.role == "student",
            User.is_active,
        )
        .order_by(FaceEnrollment.user_id, FaceEnrollment.id)
    )
    if user_ids is not None:
        query = query.where(FaceEnrollment.user_id.in_(user_ids))
    out: dict[int, list[bytes]] = {}
    for user_id, encoding in session.execute(query):
        if encoding is not None:  # always, once approved (ck_face_enrollments_encoding_kept)
            out.setdefault(user_id, []).append(bytes(encoding))
    return out


def _gallery(encodings: list[bytes]) -> npt.NDArray[np.float64]:
    return np.stack([faces.encoding_from_bytes(e) for e in encodings])


def _round(distance: float) -> float:
    return round(distance, 4)


# -- enrollment ----------------------------------------------------------------------------


def _enroll(ctx: JobContext, photo_id: int) -> None:
    user_id = int(ctx.params["user_id"])
    stages = _Stages()
    image = _decode(photo_id, stages)
    try:
        encoding, quality = fp.encode_enrollment_face(image)
    except fp.FaceError as exc:
        raise JobFailed(exc.code, exc.message) from exc
    del image
    stages.mark("face")
    with ctx.finish() as session:
        # The user first, then the photo: the order in which deleting a user locks them.
        user = session.scalar(select(User).where(User.id == user_id).with_for_update())
        if user is None:
            raise JobFailed("user_not_found", "The user was deleted.")
        keep = _claim_photo(session, photo_id)
        count = session.scalar(
            select(func.count())
            .select_from(FaceEnrollment)
            .where(FaceEnrollment.user_id == user_id, face_review.counts_toward_cap())
        )
        if (count or 0) >= settings.face_max_enrollments:
            raise JobFailed(
                "too_many_enrollments",
                f"At most {settings.face_max_enrollments} face enrollments per user.",
            )
        reviewer = _vouching_uploader(session, photo_id, user_id)
        status = face_review.initial_status(
            approval_required=settings.face_enrollment_approval, vouched=reviewer is not None
        )
        # A pending enrollment keeps its photo for the reviewer until the decision.
        retain = keep or status == face_review.PENDING
        row = FaceEnrollment(
            user_id=user_id,
            encoding=faces.encoding_to_bytes(encoding),
            model=fp.MODEL_NAME,
            face_px=quality.face_px,
            detector_score=quality.detector_score,
            photo_id=photo_id if retain else None,
            status=status,
            reviewed_by=reviewer,
            reviewed_at=func.now() if reviewer is not None else None,
        )
        session.add(row)
        session.flush()
        _release_photo(session, photo_id, retain)
        ctx.set_result(
            {
                "face_id": row.id,
                "status": status,
                "model": fp.MODEL_NAME,
                "quality": {
                    "face_px": quality.face_px,
                    "detector_score": round(quality.detector_score, 3),
                },
            }
        )
    stages.mark("write")
    log.info("faces.enrolled", **stages.ms)


def _vouching_uploader(session: Session, photo_id: int, student_id: int) -> int | None:
    """The uploader of the photo if they are, now, a reviewer of the student: their upload is
    their approval. A student's own upload, or one by a user demoted meanwhile, is not."""
    uploader = session.scalar(
        select(User)
        .join(FacePhoto, FacePhoto.uploaded_by == User.id)
        .where(FacePhoto.id == photo_id)
    )
    if uploader is None or not uploader.is_active:
        return None
    allowed = session.scalar(select(face_review.may_review(uploader.id, uploader.role, student_id)))
    return uploader.id if allowed else None


# -- check-in ------------------------------------------------------------------------------


def _not_recorded(refusal: WindowRefusal) -> dict[str, Any]:
    return {
        "recorded": False,
        "reason": refusal.code,
        "message": refusal.message,
        "details": refusal.details,
    }


def _check_in(ctx: JobContext, photo_id: int) -> None:
    user_id, test_id = int(ctx.params["user_id"]), int(ctx.params["test_id"])
    with db().transaction() as session:
        refusal = _window_refusal(session, test_id)
    if refusal is not None:  # already too late: spare the face work
        with ctx.finish() as session:
            keep = _claim_photo(session, photo_id)
            ctx.set_result(_not_recorded(refusal))
            _release_photo(session, photo_id, keep)
        return
    stages = _Stages()
    image = _decode(photo_id, stages)
    try:
        encoding, _ = fp.encode_single_face(image, fp.DEFAULT_MIN_FACE_PX)
    except fp.FaceError as exc:
        raise JobFailed(exc.code, exc.message) from exc
    del image
    stages.mark("face")
    with db().transaction() as session:
        enrolled = _enrollments(session, [user_id]).get(user_id)
    if not enrolled:
        raise JobFailed("not_enrolled", "The student has no face enrollment.")
    verdict = faces.verify(encoding, _gallery(enrolled), settings.face_tolerance)
    stages.mark("match")
    with ctx.finish() as session:
        keep = _claim_photo(session, photo_id)
        result: dict[str, Any] = {
            "verified": verdict.verified,
            "distance": _round(verdict.distance),
        }
        refusal = _window_refusal(session, test_id)
        if not verdict.verified:
            result.update(recorded=False, reason="not_a_match", tolerance=settings.face_tolerance)
        elif refusal is not None:  # the test closed while the photo was being matched
            result.update(_not_recorded(refusal))
        else:
            recorded = _record_present(
                session,
                test_id=test_id,
                user_id=user_id,
                distance=verdict.distance,
                recorded_by=user_id,
            )
            result.update(attendance_id=recorded.attendance_id, recorded=recorded.written)
            if not recorded.written:
                result.update(reason=MANUAL_RECORD, message=MANUAL_RECORD_MESSAGE)
        ctx.set_result(result)
        _release_photo(session, photo_id, keep)
    stages.mark("write")
    log.info("faces.checked_in", verified=verdict.verified, **stages.ms)


# -- class photo ---------------------------------------------------------------------------


def candidate_ids(session: Session, test_id: int) -> list[int] | None:
    """The students who may take the test, whom its class photo is matched against: the members
    of its classes, or None (every student) when it is assigned to none."""
    class_ids = select(ExamClass.class_id).where(ExamClass.test_id == test_id)
    if session.scalar(select(exists(class_ids))) is not True:
        return None
    members = select(ClassMember.user_id).where(ClassMember.class_id.in_(class_ids)).distinct()
    return list(session.scalars(members))


def _class_photo(ctx: JobContext, photo_id: int) -> None:
    test_id = int(ctx.params["test_id"])
    stages = _Stages()
    image = _decode(photo_id, stages)
    found = fp.encode_all_faces(image)
    del image
    if not found:
        raise JobFailed("no_face", "No face found in the class photo.")
    stages.mark("faces")
    ctx.check_canceled()
    with db().transaction() as session:
        _require_test(session, test_id)
        enrolled = _enrollments(session, candidate_ids(session, test_id))
    candidates = {uid: _gallery(encs) for uid, encs in enrolled.items()}
    matches, unknown = faces.assign_faces(found, candidates, settings.face_tolerance)
    stages.mark("match")
    with ctx.finish() as session:
        keep = _claim_photo(session, photo_id)
        _require_test(session, test_id)
        present = {
            row[0]
            for row in session.execute(
                select(User.id).where(User.id.in_([m.user_id for m in matches]))
            )
        }
        matched = [m for m in matches if m.user_id in present]  # not deleted meanwhile
        kept: list[dict[str, Any]] = []
        for m in sorted(matched, key=lambda m: m.user_id):
            recorded = _record_present(
                session,
                test_id=test_id,
                user_id=m.user_id,
                distance=m.distance,
                recorded_by=ctx.owner_id,
            )
            if not recorded.written:
                kept.append(
                    {"user_id": m.user_id, "attendance_id": recorded.attendance_id,
                     "reason": MANUAL_RECORD}
                )  # fmt: skip
        ctx.set_result(
            {
                "matched": [
                    {"user_id": m.user_id, "distance": _round(m.distance)}
                    for m in sorted(matched, key=lambda m: m.user_id)
                ],
                # Matched, but a record written by hand stands (MANUAL_RECORD_MESSAGE).
                "left_as_is": kept,
                "unknown_faces": unknown + len(matches) - len(matched),
                "faces": len(found),
            }
        )
        _release_photo(session, photo_id, keep)
    stages.mark("write")
    log.info("faces.class_photo", faces=len(found), candidates=len(candidates), **stages.ms)


@app.task(name="faces.enroll", **TASK_OPTIONS)
def enroll(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _photo_job(_enroll))


@app.task(name="faces.check_in", **TASK_OPTIONS)
def check_in(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _photo_job(_check_in))


@app.task(name="faces.class_photo", **TASK_OPTIONS)
def class_photo(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _photo_job(_class_photo))
