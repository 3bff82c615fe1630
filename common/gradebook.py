"""Between the database and the pure grading: a test's `AnswerKey` built from its rows, and the
stored forms of answers and grading details.

The API (instant score on submit) and the worker (regrade, import) both go through here and
then through `common.grading.score`, so a score never depends on who computed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from common.grading import (
    AnswerKey,
    Answers,
    AnswerValidationError,
    Correctness,
    QuestionKey,
    Scheme,
    ScoreResult,
    normalize_answers,
    validate_answers,
)

__all__ = [
    "STATE_CODES",
    "DetailsEncoder",
    "QuestionView",
    "answer_key",
    "chosen_lists",
    "details_json",
    "details_view",
    "read_answers",
    "stored_answers",
    "stored_details",
]

# Correctness as stored in `submissions.details`: one letter keeps 100,000 rows small.
STATE_CODES: dict[Correctness, str] = {
    Correctness.CORRECT: "c",
    Correctness.PARTIAL: "p",
    Correctness.INCORRECT: "i",
    Correctness.UNANSWERED: "u",
}
CODE_STATES: dict[str, Correctness] = {code: state for state, code in STATE_CODES.items()}


class _OptionRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def is_correct(self) -> bool: ...


class _QuestionRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def points(self) -> float: ...
    @property
    def multiple(self) -> bool: ...
    @property
    def scoring_scheme(self) -> str | None: ...
    @property
    def options(self) -> Sequence[_OptionRow]: ...


class _TestSettings(Protocol):
    @property
    def scoring_scheme(self) -> str: ...
    @property
    def negative_fraction(self) -> float: ...
    @property
    def unanswered_mark(self) -> float: ...


def answer_key(test: _TestSettings, questions: Iterable[_QuestionRow]) -> AnswerKey:
    """The key of a test from its rows (ORM objects or look-alikes), options loaded."""
    return AnswerKey(
        tuple(
            QuestionKey(
                id=q.id,
                points=q.points,
                multiple=q.multiple,
                options=frozenset(o.id for o in q.options),
                correct=frozenset(o.id for o in q.options if o.is_correct),
                scheme=Scheme(q.scoring_scheme) if q.scoring_scheme else None,
            )
            for q in questions
        ),
        scheme=Scheme(test.scoring_scheme),
        negative_fraction=test.negative_fraction,
        unanswered_mark=test.unanswered_mark,
    )


def stored_answers(answers: Mapping[int, AbstractSet[int]], key: AnswerKey) -> dict[str, Any]:
    """Validated answers as stored, in the API's own shape: {"question id": option id} for a
    single-answer question, {"question id": [sorted option ids]} for a multiple one; answered
    questions only. That shape passes `validate_answers`' fast path when read back."""
    out: dict[str, Any] = {}
    for q in key.questions:
        chosen = answers.get(q.id)
        if chosen:
            out[str(q.id)] = (
                next(iter(chosen)) if not q.multiple and len(chosen) == 1 else sorted(chosen)
            )
    return out


def read_answers(key: AnswerKey, stored: Mapping[str, Any]) -> Answers:
    """Stored answers, normalised for `score`: validated against the current key when they
    still fit it (the fast path), else only shape-checked (after a key edit they may name
    options or questions the key no longer has, which `score` tolerates).

    Raises AnswerValidationError (or TypeError / AttributeError) for data that is not answers.
    """
    try:
        return validate_answers(key, stored)
    except AnswerValidationError:
        return normalize_answers(stored)


def chosen_lists(stored: Mapping[str, Any]) -> dict[str, list[int]]:
    """Stored answers as {"question id": [option ids]}, whatever their shape."""
    return {
        qid: sorted(value) if isinstance(value, list) else [value]
        for qid, value in stored.items()
        if value is not None and value != []
    }


def stored_details(result: ScoreResult) -> list[list[Any]]:
    """[[question id, points, max points, state letter], ...] in key order."""
    return [
        [q.question_id, q.points, q.max_points, STATE_CODES[q.correctness]]
        for q in result.questions
    ]


def details_json(result: ScoreResult) -> str:
    """`stored_details` as the exact JSON text every writer stores (compact, orjson), so a
    regrade can tell an unchanged row by comparing text."""
    return orjson.dumps(stored_details(result)).decode()


@dataclass(frozen=True, slots=True)
class QuestionView:
    question_id: int
    points: float
    max_points: float
    correctness: Correctness


def details_view(stored: Iterable[Sequence[Any]]) -> list[QuestionView]:
    return [
        QuestionView(int(qid), float(points), float(top), CODE_STATES[code])
        for qid, points, top, code in stored
    ]


class DetailsEncoder:
    """`details_json`, byte for byte, fast enough for a bulk regrade.

    `score` hands out the key's precomputed result objects, so each one's JSON fragment is
    built once and then reused by identity. One encoder per key.
    """

    def __init__(self) -> None:
        self._fragments: dict[int, str] = {}
        self._keep: list[object] = []  # keeps ids stable while the encoder lives

    def encode(self, result: ScoreResult) -> str:
        fragments = self._fragments
        try:
            return "[" + ",".join([fragments[id(q)] for q in result.questions]) + "]"
        except KeyError:
            for q in result.questions:
                if id(q) not in fragments:
                    fragments[id(q)] = orjson.dumps(
                        [q.question_id, q.points, q.max_points, STATE_CODES[q.correctness]]
                    ).decode()
                    self._keep.append(q)
            return "[" + ",".join([fragments[id(q)] for q in result.questions]) + "]"
