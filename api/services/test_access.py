"""Loading a test for a caller, and its key: the I/O side of `common.exam_visibility`.

The rules themselves (who manages a test, who sees it, what of its paper and results they see
and when) live in `common.exam_visibility`; this module applies them to queries. A test you may
not see does not exist for you: 404, never 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.deps import Principal
from common import exam_visibility as visibility
from common.errors import NotFound
from common.grading import AnswerKey, answer_key
from common.models import Attempt, Exam, Option, Question

Lock = Literal["share", "update"] | None


async def get_test(
    session: AsyncSession,
    principal: Principal,
    test_id: int,
    *,
    manage: bool = False,
    lock: Lock = None,
    with_questions: bool = False,
) -> Exam:
    """The test if `principal` may see it (or manage it, with `manage`); else 404.

    `lock="share"` keeps its key from changing until the transaction ends (submits, attempt
    starts); `lock="update"` is for writers of the test or its submissions.
    """
    query = select(Exam).where(
        Exam.id == test_id,
        visibility.manage_clause(principal) if manage else visibility.visible_clause(principal),
    )
    if with_questions:
        query = query.options(selectinload(Exam.questions).selectinload(Question.options))
    if lock == "share":
        query = query.with_for_update(read=True, of=Exam)
    elif lock == "update":
        query = query.with_for_update(of=Exam)
    test = (await session.execute(query)).scalar_one_or_none()
    if test is None:
        raise NotFound("test not found", code="test_not_found")
    return test


@dataclass(slots=True)
class OptionRow:
    id: int
    position: int
    text: str
    is_correct: bool


@dataclass(slots=True)
class QuestionRow:
    id: int
    position: int
    text: str
    points: float
    multiple: bool
    scoring_scheme: str | None
    options: list[OptionRow] = field(default_factory=list)


# Read paths use the light rows; create and update hand over ORM objects. Both have these
# attributes.
QuestionLike = Question | QuestionRow
OptionLike = Option | OptionRow


async def load_questions(session: AsyncSession, test_id: int) -> list[QuestionRow]:
    """A test's questions with their options, in order: one query, no ORM identity map (the
    read path of a 50-question test is several times faster this way)."""
    rows = await session.execute(
        select(
            Question.id,
            Question.position,
            Question.text,
            Question.points,
            Question.multiple,
            Question.scoring_scheme,
            Option.id,
            Option.position,
            Option.text,
            Option.is_correct,
        )
        .join(Option, Option.question_id == Question.id, isouter=True)
        .where(Question.test_id == test_id)
        .order_by(Question.position, Question.id, Option.position, Option.id)
    )
    questions: list[QuestionRow] = []
    current: QuestionRow | None = None
    for qid, qpos, qtext, points, multiple, scheme, oid, opos, otext, correct in rows:
        if current is None or current.id != qid:
            current = QuestionRow(qid, qpos, qtext, points, multiple, scheme)
            questions.append(current)
        if oid is not None:
            current.options.append(OptionRow(oid, opos, otext, correct))
    return questions


# The compiled key of recently used tests, by (id, revision): every edit bumps the revision,
# so a stale entry is never used, in this process or another.
_KEYS: LRUCache[tuple[int, int], AnswerKey] = LRUCache(maxsize=256)


async def key_of(session: AsyncSession, test: Exam) -> AnswerKey:
    cache_key = (test.id, test.revision)
    key = _KEYS.get(cache_key)
    if key is None:
        key = _KEYS[cache_key] = answer_key(test, await load_questions(session, test.id))
    return key


async def latest_attempt(
    session: AsyncSession, test_id: int, user_id: int, *, for_update: bool = False
) -> Attempt | None:
    query = (
        select(Attempt)
        .where(Attempt.test_id == test_id, Attempt.user_id == user_id)
        .order_by(Attempt.number.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def submission_context(
    session: AsyncSession, principal: Principal, test_id: int
) -> tuple[Exam, Attempt | None, AnswerKey]:
    """What a submit needs, loaded and locked in one place: the test (404 unless visible;
    FOR SHARE, so a key edit waits for the submit), the caller's latest attempt (FOR UPDATE:
    two submits of one attempt are ordered) and the compiled key."""
    test = await get_test(session, principal, test_id, lock="share")
    latest = await latest_attempt(session, test.id, principal.id, for_update=True)
    return test, latest, await key_of(session, test)
