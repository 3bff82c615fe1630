"""Authoring tests: create, list, read, update (keeping ids of unchanged options), delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter
from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.cache import ResponseCache
from api.deps import Page, Principal
from api.schemas.tests import (
    ExamCreate,
    ExamOut,
    ExamSummary,
    ExamUpdate,
    QuestionCreate,
    QuestionOut,
    QuestionUpdate,
)
from api.services import test_access as access
from api.services.test_access import OptionLike, QuestionLike
from common import exam_visibility as visibility
from common import grading
from common.cache import LISTS, test_scope
from common.errors import Conflict, Unprocessable
from common.exam_visibility import Paper
from common.grading import answer_key, key_changes_scores
from common.grading.lock import GRADING_LOCK
from common.models import Attempt, Exam, ExamClass, Option, Question, SchoolClass, Submission

SETTINGS = (
    "published",
    "scoring_scheme",
    "negative_fraction",
    "unanswered_mark",
    "time_limit_seconds",
    "opens_at",
    "closes_at",
    "attempts_allowed",
    "shuffle_questions",
    "shuffle_options",
    "review_policy",
)


# --------------------------------------------------------------------------- views
#
# Views are built as plain dicts (the same fields as api.schemas.tests) and serialised with
# orjson for the hot read path; create and update validate them into the pydantic models.


def max_score(questions: Sequence[QuestionLike]) -> float:
    return grading.max_score(q.points for q in questions)


def to_json(payload: Any) -> bytes:
    # OPT_UTC_Z: datetimes end in "Z", as pydantic writes them.
    return orjson.dumps(payload, option=orjson.OPT_UTC_Z)


def _question(q: QuestionLike, options: Sequence[OptionLike], key: bool) -> dict[str, Any]:
    return {
        "id": q.id,
        "position": q.position,
        "text": q.text,
        "points": q.points,
        "multiple": q.multiple,
        "scoring_scheme": q.scoring_scheme,
        "options": [
            {"id": o.id, "position": o.position, "text": o.text, "is_correct": o.is_correct}
            if key
            else {"id": o.id, "position": o.position, "text": o.text}
            for o in options
        ],
    }


def owner_payload(
    test: Exam, questions: Sequence[QuestionLike], class_ids: Sequence[int]
) -> dict[str, Any]:
    return {
        **_common(test, questions),
        "view": "owner",
        "owner_id": test.owner_id,
        "published": test.published,
        "shuffle_questions": test.shuffle_questions,
        "shuffle_options": test.shuffle_options,
        "class_ids": sorted(class_ids),
        "key_version": test.key_version,
        "needs_regrade": test.needs_regrade,
        "revision": test.revision,
        "questions": [_question(q, q.options, True) for q in questions],
    }


def owner_view(test: Exam, questions: Sequence[QuestionLike], class_ids: Sequence[int]) -> ExamOut:
    return ExamOut.model_validate(owner_payload(test, questions, class_ids))


def ordered(
    questions: Sequence[QuestionLike],
    question_order: Sequence[int] | None,
    option_order: Mapping[str, Sequence[int]] | None,
) -> list[tuple[QuestionLike, list[OptionLike]]]:
    """Questions and their options in an attempt's shuffled order. Questions or options added
    after the attempt started follow in their authored order; removed ones are skipped."""

    def arrange(items: Sequence[Any], order: Sequence[int] | None) -> list[Any]:
        if not order:
            return list(items)
        rank = {item_id: i for i, item_id in enumerate(order)}
        return sorted(items, key=lambda item: rank.get(item.id, len(rank)))  # stable sort

    option_order = option_order or {}
    return [
        (q, arrange(q.options, option_order.get(str(q.id))))
        for q in arrange(questions, question_order)
    ]


def taker_questions_payload(
    arranged: Sequence[tuple[QuestionLike, Sequence[OptionLike]]],
) -> list[dict[str, Any]]:
    return [_question(q, options, False) for q, options in arranged]


def taker_questions(
    arranged: Sequence[tuple[QuestionLike, Sequence[OptionLike]]],
) -> list[QuestionOut]:
    return [QuestionOut.model_validate(q) for q in taker_questions_payload(arranged)]


def taker_payload(
    test: Exam, questions: Sequence[QuestionLike], seen: Paper, attempt: Attempt | None
) -> dict[str, Any]:
    """A student's view: no key, and no questions at all unless `seen` shows them."""
    if not seen.shows_questions:
        return {
            **_common(test, questions),
            "view": "taker",
            "questions": [],
            "withheld": seen.value,
        }
    arranged = ordered(
        questions,
        attempt.question_order if attempt else None,
        attempt.option_order if attempt else None,
    )
    return {
        **_common(test, questions),
        "view": "taker",
        "questions": taker_questions_payload(arranged),
        "withheld": None,
    }


def _common(test: Exam, questions: Sequence[QuestionLike]) -> dict[str, Any]:
    return {
        "id": test.id,
        "title": test.title,
        "description": test.description,
        "scoring_scheme": test.scoring_scheme,
        "negative_fraction": test.negative_fraction,
        "unanswered_mark": test.unanswered_mark,
        "time_limit_seconds": test.time_limit_seconds,
        "opens_at": test.opens_at,
        "closes_at": test.closes_at,
        "attempts_allowed": test.attempts_allowed,
        "review_policy": test.review_policy,
        "question_count": len(questions),
        "max_score": max_score(questions),
        "created_at": test.created_at,
        "updated_at": test.updated_at,
    }


async def class_ids_of(session: AsyncSession, test_id: int) -> list[int]:
    rows = await session.scalars(select(ExamClass.class_id).where(ExamClass.test_id == test_id))
    return list(rows.all())


# --------------------------------------------------------------------------- use cases


async def _check_classes(session: AsyncSession, owner_id: int, class_ids: Sequence[int]) -> None:
    """A test's classes must belong to its owner (so deleting either leaves nothing behind)."""
    if not class_ids:
        return
    found = set(
        (
            await session.scalars(
                select(SchoolClass.id).where(
                    SchoolClass.id.in_(class_ids), SchoolClass.owner_id == owner_id
                )
            )
        ).all()
    )
    problems = [
        {"path": f"class_ids[{i}]", "message": f"no class {cid} of the test's owner"}
        for i, cid in enumerate(class_ids)
        if cid not in found
    ]
    if problems:
        raise Unprocessable(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)


async def _set_classes(session: AsyncSession, test_id: int, class_ids: Sequence[int]) -> None:
    await session.execute(delete(ExamClass).where(ExamClass.test_id == test_id))
    session.add_all(ExamClass(test_id=test_id, class_id=cid) for cid in dict.fromkeys(class_ids))


def _new_question(position: int, data: QuestionCreate | QuestionUpdate) -> Question:
    return Question(
        position=position,
        text=data.text,
        points=data.points,
        multiple=data.multiple,
        scoring_scheme=data.scoring_scheme,
        options=[
            Option(position=i, text=o.text, is_correct=o.is_correct)
            for i, o in enumerate(data.options)
        ],
    )


async def create_test(*, session: AsyncSession, principal: Principal, data: ExamCreate) -> ExamOut:
    await _check_classes(session, principal.id, data.class_ids)
    test = Exam(
        owner_id=principal.id,
        title=data.title,
        description=data.description,
        **{name: getattr(data, name) for name in SETTINGS},
        key_version=1,
        needs_regrade=False,
        revision=1,
        questions=[_new_question(i, q) for i, q in enumerate(data.questions)],
    )
    session.add(test)
    await session.flush()
    await _set_classes(session, test.id, data.class_ids)
    await session.commit()
    return owner_view(test, test.questions, data.class_ids)


async def list_tests(
    *, session: AsyncSession, principal: Principal, page: Page
) -> tuple[Sequence[Exam], int]:
    query = select(Exam).where(visibility.visible_clause(principal))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Exam.id).limit(page.limit).offset(page.offset))
    return rows.all(), total or 0


async def read_test_body(
    *, session: AsyncSession, principal: Principal, test_id: int, cache: ResponseCache
) -> bytes:
    """The test as JSON for this caller, from the cache when possible.

    What the caller sees (`common.exam_visibility.paper`) is decided on every request, from the
    test, the caller's role and latest attempt, and the time; the cache holds one entry per
    outcome (key, questions, metadata only), so no audience or moment ever gets another's view.
    A shuffled test is ordered per attempt, so a student's view of its questions is not cached.
    """
    test = await access.get_test(session, principal, test_id)
    attempt = None
    if visibility.needs_attempt(principal, test):
        attempt = await access.latest_attempt(session, test.id, principal.id)
    seen = visibility.paper(principal, test, attempt, datetime.now(UTC))

    async def compute() -> bytes:
        questions = await access.load_questions(session, test.id)
        if seen is Paper.KEY:
            payload = owner_payload(test, questions, await class_ids_of(session, test.id))
        else:
            payload = taker_payload(test, questions, seen, attempt)
        return to_json(payload)

    if seen is Paper.QUESTIONS and (test.shuffle_questions or test.shuffle_options):
        return await compute()
    return await cache.get_or_compute(
        "test_detail", (test_scope(test.id), LISTS), (seen.value,), compute
    )


_SUMMARIES = TypeAdapter(list[ExamSummary])  # built once: building one costs milliseconds


async def list_tests_body(
    *, session: AsyncSession, principal: Principal, page: Page, cache: ResponseCache
) -> tuple[bytes, int]:
    """The caller's page of tests as JSON and the total, cached per caller and page."""

    async def compute() -> bytes:
        tests, total = await list_tests(session=session, principal=principal, page=page)
        items = _SUMMARIES.dump_json([ExamSummary.model_validate(t) for t in tests])
        return f"{total}\n".encode() + items

    body = await cache.get_or_compute(
        "test_list", (LISTS,), (principal.id, principal.role, page.limit, page.offset), compute
    )
    total, _, items = body.partition(b"\n")
    return items, int(total)


def _match(
    wanted: Sequence[Any], existing: Sequence[Any], path: str, what: str, parent: str
) -> list[Any | None]:
    """Pair each wanted item with an existing row: by `id` when given (it must be one of
    `existing`), else by identical text among rows not claimed yet; None means a new row."""
    by_id = {row.id: row for row in existing}
    claimed: set[int] = set()
    matched: list[Any | None] = [None] * len(wanted)
    problems = []
    for i, item in enumerate(wanted):
        if item.id is None:
            continue
        row = by_id.get(item.id)
        if row is None:
            problems.append(
                {"path": f"{path}[{i}].id", "message": f"not an existing {what} of this {parent}"}
            )
        elif row.id in claimed:
            problems.append({"path": f"{path}[{i}].id", "message": f"{what} {row.id} given twice"})
        else:
            claimed.add(row.id)
            matched[i] = row
    if problems:
        raise Unprocessable(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)
    for i, item in enumerate(wanted):
        if item.id is None:
            for row in existing:
                if row.id not in claimed and row.text == item.text:
                    claimed.add(row.id)
                    matched[i] = row
                    break
    return matched


def _apply_questions(test: Exam, wanted: Sequence[QuestionUpdate]) -> None:
    matched = _match(wanted, test.questions, "questions", "question", "test")
    questions: list[Question] = []
    for position, (data, question) in enumerate(zip(wanted, matched, strict=True)):
        if question is None:
            questions.append(_new_question(position, data))
            continue
        question.position = position
        question.text = data.text
        question.points = data.points
        question.multiple = data.multiple
        question.scoring_scheme = data.scoring_scheme
        try:
            option_rows = _match(data.options, question.options, "options", "option", "question")
        except Unprocessable as exc:  # name the full path of the offending option
            for detail in exc.details:
                detail["path"] = f"questions[{position}].{detail['path']}"
            exc.message = f"{exc.details[0]['path']}: {exc.details[0]['message']}"
            raise
        options: list[Option] = []
        for index, (option_data, option) in enumerate(zip(data.options, option_rows, strict=True)):
            if option is None:
                option = Option(text=option_data.text)
            option.position = index
            option.text = option_data.text
            option.is_correct = option_data.is_correct
            options.append(option)
        question.options = options
        questions.append(question)
    test.questions = questions


async def update_test(
    *, session: AsyncSession, principal: Principal, test_id: int, data: ExamUpdate
) -> ExamOut:
    test = await access.get_test(
        session, principal, test_id, manage=True, lock="update", with_questions=True
    )
    changes = data.model_dump(exclude_unset=True)
    opens_at = changes.get("opens_at", test.opens_at)
    closes_at = changes.get("closes_at", test.closes_at)
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise Unprocessable(
            "closes_at: must be later than opens_at",
            details=[{"path": "closes_at", "message": "must be later than opens_at"}],
        )
    if "class_ids" in changes:
        await _check_classes(session, test.owner_id, changes["class_ids"])
    old_key = answer_key(test, test.questions)
    for name in ("title", "description", *SETTINGS):
        if name in changes:
            setattr(test, name, changes[name])
    if data.questions is not None:
        _apply_questions(test, data.questions)
    test.revision += 1
    test.updated_at = datetime.now(UTC)
    await session.flush()  # new questions and options get their ids
    if key_changes_scores(old_key, answer_key(test, test.questions)):
        job = await GRADING_LOCK.holder(session, test.id)
        if job is not None:
            raise Conflict(
                "a regrade or import of this test is running; change the key when it ends",
                code="grading_in_progress",
                details={"task_id": str(job.id)},
            )
        test.key_version += 1
        has_submissions = await session.scalar(
            select(exists().where(Submission.test_id == test.id))
        )
        if has_submissions:
            test.needs_regrade = True
    if "class_ids" in changes:
        await _set_classes(session, test.id, changes["class_ids"])
    class_ids = (
        changes["class_ids"] if "class_ids" in changes else await class_ids_of(session, test.id)
    )
    test.updated_at = datetime.now(UTC)  # explicit, or the onupdate default expires it
    await session.commit()
    return owner_view(test, test.questions, class_ids)


async def delete_test(*, session: AsyncSession, principal: Principal, test_id: int) -> None:
    test = await access.get_test(session, principal, test_id, manage=True, lock="update")
    # Questions, options, class assignments, attempts, submissions, pending imports and
    # attendance records go with it (ON DELETE CASCADE); finished jobs stay as history.
    await session.execute(delete(Exam).where(Exam.id == test.id))
    await session.commit()
