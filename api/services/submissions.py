"""Taking tests (attempts, submit), reading submissions, and the grading use cases behind them:
bulk regrade and CSV import (handed to the worker), CSV export and statistics.

The instant score on submit and the worker's regrade both score through `common.grading`, so a
score never depends on who computed it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Text, cast, exists, func, insert, literal, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.cache import ResponseCache
from api.deps import Page, Principal
from api.multipart import Upload
from api.resources import Resources
from api.schemas.submissions import (
    AttemptOut,
    DetailsOut,
    ItemStatsOut,
    QuestionResultOut,
    StatsOut,
    SubmissionOut,
    SubmissionSummary,
    SubmitResult,
)
from api.services import test_access as access
from api.services.test_access import QuestionLike
from api.services.tests import ordered, taker_questions
from common import attempt_rules
from common import exam_visibility as visibility
from common.errors import Conflict, NotFound, Unprocessable
from common.grading import (
    AnswerValidationError,
    Scorer,
    answer_key,
    chosen_lists,
    details_view,
    graded_row,
    percentage,
    validate_answers,
)
from common.grading.cache_scopes import statistics_scopes
from common.grading.lock import GRADING_LOCK, IMPORT_TASK, REGRADE_TASK
from common.item_stats import quiz_statistics
from common.jobs import enqueue, test_subject
from common.models import Attempt, Exam, Job, Submission, SubmissionImport, User
from common.results_csv import HeaderError, ImportParser, export_header, export_row, rows_to_csv
from common.settings import Settings

EXPORT_BATCH = 2_000


def _now() -> datetime:
    return datetime.now(UTC)


def _attempt_values(
    test: Exam, user_id: int, number: int, now: datetime, questions: Sequence[QuestionLike]
) -> dict[str, Any]:
    deadline = None
    if test.time_limit_seconds:
        deadline = now + timedelta(seconds=test.time_limit_seconds)
        if test.closes_at is not None and test.closes_at < deadline:
            deadline = test.closes_at
    rng = secrets.SystemRandom()
    question_order = option_order = None
    if test.shuffle_questions:
        question_order = [q.id for q in questions]
        rng.shuffle(question_order)
    if test.shuffle_options:
        option_order = {}
        for q in questions:
            ids = [o.id for o in q.options]
            rng.shuffle(ids)
            option_order[str(q.id)] = ids
    return {
        "test_id": test.id,
        "user_id": user_id,
        "number": number,
        "started_at": now,
        "deadline": deadline,
        "question_order": question_order,
        "option_order": option_order,
    }


async def _insert_attempt(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert the attempt unless a concurrent request already did: the unique (test, user,
    number) constraint decides, so concurrent starts create exactly one row."""
    return await session.scalar(
        pg_insert(Attempt)
        .values(values)
        .on_conflict_do_nothing(index_elements=["test_id", "user_id", "number"])
        .returning(Attempt.id)
    )


def _attempt_out(
    principal: Principal,
    test: Exam,
    attempt: Attempt,
    questions: Sequence[QuestionLike],
    now: datetime,
) -> AttemptOut:
    """The attempt with its questions, while `common.exam_visibility.paper` shows them (an
    attempt resumed in its grace period after the deadline has none)."""
    shown = visibility.paper(principal, test, attempt, now).shows_questions
    arranged = ordered(questions, attempt.question_order, attempt.option_order) if shown else []
    return AttemptOut(
        id=attempt.id,
        test_id=attempt.test_id,
        user_id=attempt.user_id,
        number=attempt.number,
        started_at=attempt.started_at,
        deadline=attempt.deadline,
        server_time=now,
        submitted_at=attempt.submitted_at,
        questions=taker_questions(arranged),
    )


async def start_attempt(
    *, session: AsyncSession, principal: Principal, settings: Settings, test_id: int
) -> tuple[AttemptOut, bool]:
    """Start the caller's next attempt, or resume the open one. Returns (attempt, created)."""
    test = await access.get_test(session, principal, test_id, lock="share")
    now = _now()
    attempt_rules.check_window(test, now, 0)
    questions = await access.load_questions(session, test.id)
    latest = await access.latest_attempt(session, test.id, principal.id)
    resumed = attempt_rules.resumable(latest, now, settings.submission_grace_seconds)
    if resumed is not None:
        return _attempt_out(principal, test, resumed, questions, now), False
    number = attempt_rules.next_number(test, latest)
    created = await _insert_attempt(
        session, _attempt_values(test, principal.id, number, now, questions)
    )
    await session.commit()
    attempt = (
        await session.execute(
            select(Attempt).where(
                Attempt.test_id == test.id,
                Attempt.user_id == principal.id,
                Attempt.number == number,
            )
        )
    ).scalar_one()
    return _attempt_out(principal, test, attempt, questions, now), created is not None


def _details_out(
    stored: Sequence[Sequence[Any]], score_: float, max_score: float, review: bool
) -> DetailsOut:
    """Without review (`common.exam_visibility.review_allowed`), per-question points and
    correctness are both withheld: points of 0 or full marks tell as much as correctness."""
    return DetailsOut(
        max_score=max_score,
        percentage=percentage(score_, max_score),
        review_allowed=review,
        questions=[
            QuestionResultOut(
                question_id=v.question_id,
                points=v.points if review else None,
                max_points=v.max_points,
                correctness=v.correctness.value if review else None,
            )
            for v in details_view(stored)
        ],
    )


async def submit(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    test_id: int,
    answers: dict[str, Any],
) -> SubmitResult:
    # The test (FOR SHARE: its key cannot change before we commit), the caller's latest
    # attempt (FOR UPDATE) and the key; then the attempt rules say where this submission goes.
    test, latest, key = await access.submission_context(session, principal, test_id)
    now = _now()
    grace = settings.submission_grace_seconds
    slot = attempt_rules.submit_slot(test, latest, now, grace)
    try:
        chosen = validate_answers(key, answers)
    except AnswerValidationError as exc:
        problems = [{"path": e.path, "code": e.code, "message": e.message} for e in exc.errors]
        first = exc.errors[0]
        raise Unprocessable(f"{first.path}: {first.message}", details=problems) from exc
    number = slot.number
    if slot.open_attempt is not None:
        attempt_id = slot.open_attempt.id
        slot.open_attempt.submitted_at = now
    else:
        values = _attempt_values(test, principal.id, number, now, ())
        values["submitted_at"] = now
        inserted = await _insert_attempt(session, values)
        if inserted is None:
            raise Conflict(
                "another submission of yours is being recorded", code="already_submitted"
            )
        attempt_id = inserted
    graded = graded_row(key, chosen)
    key_version, review = test.key_version, visibility.review_allowed(principal, test, now, grace)
    try:
        row = (
            await session.execute(
                insert(Submission)
                .values(
                    test_id=test.id,
                    user_id=principal.id,
                    attempt_id=attempt_id,
                    attempt=number,
                    answers=graded.answers,
                    score=graded.result.score,
                    max_score=graded.result.max_score,
                    key_version=key_version,
                    # The exact text every writer stores (common.grading.GradedRow).
                    details=cast(literal(graded.details_text, Text), JSON),
                    source="api",
                    graded_at=now,
                )
                .returning(Submission.id, Submission.created_at)
            )
        ).one()
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("this attempt was already submitted", code="already_submitted") from exc
    return SubmitResult(
        id=row.id,
        test_id=test_id,
        attempt=number,
        score=graded.result.score,
        details=_details_out(graded.details, graded.result.score, graded.result.max_score, review),
        submitted_at=row.created_at,
    )


# --------------------------------------------------------------------------- reading


def _summary_fields(sub: Submission, username: str) -> dict[str, Any]:
    return {
        "id": sub.id,
        "test_id": sub.test_id,
        "user_id": sub.user_id,
        "username": username,
        "attempt": sub.attempt,
        "score": sub.score,
        "max_score": sub.max_score,
        "previous_score": sub.previous_score,
        "source": sub.source,
        "submitted_at": sub.created_at,
        "graded_at": sub.graded_at,
        "updated_at": sub.updated_at,
    }


async def list_submissions(
    *,
    session: AsyncSession,
    principal: Principal,
    test_id: int,
    page: Page,
    user_id: int | None,
) -> tuple[list[SubmissionSummary], int]:
    test = await session.get(Exam, test_id)
    if test is None:
        raise NotFound("test not found", code="test_not_found")
    query = (
        select(Submission, User.username)
        .join(User, User.id == Submission.user_id)
        .where(Submission.test_id == test_id)
    )
    if not visibility.manages(principal, test.owner_id):
        # Students see their own submissions, even of a test hidden from them since.
        query = query.where(Submission.user_id == principal.id)
        mine = await session.scalar(
            select(
                exists().where(Submission.test_id == test_id, Submission.user_id == principal.id)
            )
        )
        if not mine:
            await access.get_test(session, principal, test_id)  # 404 unless visible
    if user_id is not None:
        query = query.where(Submission.user_id == user_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.execute(
        query.order_by(Submission.id).limit(page.limit).offset(page.offset)
    )
    items = [SubmissionSummary(**_summary_fields(sub, name)) for sub, name in rows.all()]
    return items, total or 0


async def get_submission(
    *, session: AsyncSession, principal: Principal, settings: Settings, submission_id: int
) -> SubmissionOut:
    row = (
        await session.execute(
            select(Submission, User.username, Exam)
            .join(User, User.id == Submission.user_id)
            .join(Exam, Exam.id == Submission.test_id)
            .where(Submission.id == submission_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("submission not found", code="submission_not_found")
    sub, username, test = row
    if not (visibility.manages(principal, test.owner_id) or sub.user_id == principal.id):
        raise NotFound("submission not found", code="submission_not_found")
    review = visibility.review_allowed(principal, test, _now(), settings.submission_grace_seconds)
    return SubmissionOut(
        **_summary_fields(sub, username),
        key_version=sub.key_version,
        answers=chosen_lists(sub.answers),
        details=_details_out(sub.details, sub.score, sub.max_score, review),
    )


# --------------------------------------------------------------------------- grading


async def _refuse_if_grading(session: AsyncSession, test_id: int) -> None:
    job = await GRADING_LOCK.holder(session, test_id)
    if job is not None:
        raise Conflict(
            f"a {job.kind.removeprefix('grading.')} job is already running for this test",
            code="grading_in_progress",
            details={"task_id": str(job.id), "kind": job.kind},
        )


async def start_regrade(
    *,
    session: AsyncSession,
    resources: Resources,
    principal: Principal,
    test_id: int,
    dry_run: bool,
) -> Job:
    # The test row lock orders concurrent requests: the second one sees the first one's job.
    test = await access.get_test(session, principal, test_id, manage=True, lock="update")
    await _refuse_if_grading(session, test.id)
    # No count here: on a big test it would hold the request (and the test's row lock) for
    # a table scan; the worker sets the total when it starts.
    job = await enqueue(
        session,
        resources.publisher,
        kind=REGRADE_TASK,
        owner_id=principal.id,
        params={"test_id": test.id, "dry_run": dry_run},
        subject=test_subject(test.id),
    )
    await session.commit()
    return job


def _csv_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(
            "the file is not UTF-8 text",
            code="invalid_csv",
            details=[{"path": "file", "message": f"byte {exc.start} is not UTF-8"}],
        ) from exc
    if "\x00" in text:
        raise Unprocessable(
            "the file contains NUL characters; is it really CSV?",
            code="invalid_csv",
            details=[{"path": "file", "message": "NUL character"}],
        )
    return text


@dataclass(frozen=True)
class ImportGrant:
    """An import `authorize_import` allowed: the file may be read, then `start_import`."""

    test_id: int


async def authorize_import(
    *, session: AsyncSession, principal: Principal, test_id: int
) -> ImportGrant:
    """Who may import, and whether grading is busy, before a byte of the file is read, and
    without holding the test's row lock while the file arrives (`start_import` checks both
    again under the lock)."""
    await access.get_test(session, principal, test_id, manage=True)
    await _refuse_if_grading(session, test_id)
    await session.commit()
    return ImportGrant(test_id)


async def start_import(
    *,
    session: AsyncSession,
    resources: Resources,
    principal: Principal,
    grant: ImportGrant,
    upload: Upload,
) -> Job:
    """Check the CSV's header, store the file and enqueue its grading: one transaction."""
    text = _csv_text(upload.data)
    test = await access.get_test(
        session, principal, grant.test_id, manage=True, lock="update", with_questions=True
    )
    await _refuse_if_grading(session, test.id)
    try:
        # The header is checked now, so a wrong file is refused at once; rows in the job.
        ImportParser(text, answer_key(test, test.questions))
    except HeaderError as exc:
        raise Unprocessable(exc.message, code="invalid_csv", details=exc.details) from exc
    pending = SubmissionImport(
        test_id=test.id, owner_id=principal.id, filename=upload.filename, content=text
    )
    session.add(pending)
    await session.flush()
    job = await enqueue(
        session,
        resources.publisher,
        kind=IMPORT_TASK,
        owner_id=principal.id,
        params={"test_id": test.id, "import_id": pending.id},
        subject=test_subject(test.id),
    )
    await session.commit()
    return job


async def export_results(
    *, session: AsyncSession, resources: Resources, principal: Principal, test_id: int
) -> tuple[str, AsyncIterator[str]]:
    """The CSV's file name and its text in chunks, streamed from the database."""
    test = await access.get_test(session, principal, test_id, manage=True)
    question_ids = [q.id for q in await access.load_questions(session, test.id)]
    filename = f"test-{test.id}-results.csv"
    await session.rollback()  # hand the connection back before streaming on another one

    async def chunks() -> AsyncIterator[str]:
        yield rows_to_csv([export_header(question_ids)])
        async with resources.db.session() as stream_session:
            result = await stream_session.stream(
                select(
                    User.username,
                    Submission.attempt,
                    Submission.score,
                    Submission.max_score,
                    Submission.created_at,
                    Submission.answers,
                )
                .join(User, User.id == Submission.user_id)
                .where(Submission.test_id == test_id)
                .order_by(User.username, Submission.attempt)
                .execution_options(yield_per=EXPORT_BATCH)
            )
            async for batch in result.partitions(EXPORT_BATCH):
                yield rows_to_csv(
                    export_row(
                        username=username,
                        attempt=attempt,
                        score=score_,
                        max_score=max_score,
                        submitted_at=submitted_at,
                        answers=chosen_lists(answers),
                        question_ids=question_ids,
                    )
                    for username, attempt, score_, max_score, submitted_at, answers in batch
                )

    return filename, chunks()


async def statistics_body(
    *, session: AsyncSession, principal: Principal, test_id: int, cache: ResponseCache
) -> bytes:
    """Statistics as JSON, cached until a submission, key change or regrade of the test."""
    await access.get_test(session, principal, test_id, manage=True)

    async def compute() -> bytes:
        stats = await statistics(session=session, principal=principal, test_id=test_id)
        return stats.model_dump_json().encode()

    return await cache.get_or_compute("test_stats", statistics_scopes(test_id), (), compute)


async def statistics(*, session: AsyncSession, principal: Principal, test_id: int) -> StatsOut:
    test = await access.get_test(session, principal, test_id, manage=True)
    questions = await access.load_questions(session, test.id)
    key = answer_key(test, questions)
    # First attempts only: each student's lowest-numbered submitted attempt.
    # As text: the scorer reads the stored JSON itself (what a regrade does, just as fast).
    answers = (
        await session.scalars(
            select(cast(Submission.answers, Text))
            .where(Submission.test_id == test.id)
            .ext(distinct_on(Submission.user_id))
            .order_by(Submission.user_id, Submission.attempt)
        )
    ).all()
    question_ids = [q.id for q in questions]
    max_points = [q.points for q in questions]

    def compute() -> Any:
        scorer = Scorer(key)
        matrix = [[r.points for r in scorer.score_json(a).questions] for a in answers]
        return quiz_statistics(question_ids, max_points, matrix)

    stats = await asyncio.to_thread(compute)
    positions = {q.id: q.position for q in questions}
    return StatsOut(
        test_id=test.id,
        attempts=stats.attempts,
        max_score=stats.max_score,
        mean=stats.mean,
        median=stats.median,
        sd=stats.sd,
        needs_regrade=test.needs_regrade,
        questions=[
            ItemStatsOut(
                question_id=item.question_id,
                position=positions[item.question_id],
                max_points=item.max_points,
                mean=item.mean,
                facility=item.facility,
                discrimination=item.discrimination,
            )
            for item in stats.items
        ],
    )
