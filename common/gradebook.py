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

from common.grading import AnswerKey, Correctness, QuestionKey, Scheme, ScoreResult

__all__ = [
    "STATE_CODES",
    "DetailsEncoder",
    "QuestionView",
    "answer_key",
    "details_view",
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


def stored_answers(answers: Mapping[int, AbstractSet[int]]) -> dict[str, list[int]]:
    """Normalised answers as stored: {"question id": [sorted option ids]}, answered only."""
    return {str(qid): sorted(chosen) for qid, chosen in answers.items() if chosen}


def stored_details(result: ScoreResult) -> list[list[Any]]:
    """[[question id, points, max points, state letter], ...] in key order."""
    return [
        [q.question_id, q.points, q.max_points, STATE_CODES[q.correctness]]
        for q in result.questions
    ]


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
    """`stored_details` as compact JSON text, fast enough for a bulk regrade.

    `score` hands out the key's precomputed result objects, so each one's JSON fragment is
    built once and then reused by identity. One encoder per key.
    """

    def __init__(self) -> None:
        self._fragments: dict[int, bytes] = {}
        self._keep: list[object] = []  # keeps ids stable while the encoder lives

    def encode(self, result: ScoreResult) -> bytes:
        fragments = self._fragments
        parts = []
        for q in result.questions:
            fragment = fragments.get(id(q))
            if fragment is None:
                fragment = orjson.dumps(
                    [q.question_id, q.points, q.max_points, STATE_CODES[q.correctness]]
                )
                fragments[id(q)] = fragment
                self._keep.append(q)
            parts.append(fragment)
        return b"[" + b",".join(parts) + b"]"
