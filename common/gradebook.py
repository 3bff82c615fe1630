"""Between the database and the pure grading: a test's `AnswerKey` built from its rows, and the
stored forms of answers and grading details.

The API (instant score on submit) and the worker (regrade, import) both go through here and
then through `common.grading.score`, so a score never depends on who computed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import orjson

from common.grading import (
    AnswerKey,
    Correctness,
    QuestionKey,
    QuestionResult,
    Scheme,
    ScoreResult,
)

__all__ = [
    "STATE_CODES",
    "DetailsEncoder",
    "QuestionView",
    "answer_key",
    "chosen_lists",
    "details_json",
    "details_view",
    "encode_details",
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


def chosen_lists(stored: Mapping[str, Any]) -> dict[str, list[int]]:
    """Stored answers as {"question id": [option ids]}, whatever their shape."""
    return {
        qid: sorted(value) if isinstance(value, list) else [value]
        for qid, value in stored.items()
        if value is not None and value != []
    }


def stored_details(result: ScoreResult) -> list[list[Any]]:
    """[[question id, points, max points, state letter], ...] in key order."""
    return [_entry(q) for q in result.questions]


def _entry(q: QuestionResult) -> list[Any]:
    return [q.question_id, q.points, q.max_points, STATE_CODES[q.correctness]]


def details_json(result: ScoreResult) -> str:
    """`stored_details` as the exact JSON text every writer stores (compact, orjson), so a
    regrade can tell an unchanged row by comparing text."""
    return encode_details(stored_details(result))


def encode_details(details: list[list[Any]]) -> str:
    """`details_json` of details already built by `stored_details`."""
    return orjson.dumps(details).decode()


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
    """`details_json`, byte for byte, fast enough for a bulk regrade, for results scored with
    one key: each possible result's JSON fragment is built once, up front."""

    def __init__(self, key: AnswerKey) -> None:
        self._fragments = [_fragment(q) for q in key.results]

    def encode(self, result: ScoreResult) -> str:
        try:
            parts = map(self._fragments.__getitem__, map(_slot, result.questions))
            return "[" + ",".join(parts) + "]"
        except TypeError:  # a result not from the key (slot None)
            return details_json(result)


def _fragment(q: QuestionResult) -> str:
    return orjson.dumps(_entry(q)).decode()


_slot = attrgetter("slot")
