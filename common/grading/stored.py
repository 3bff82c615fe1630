"""The stored formats: answers as `submissions.answers` holds them, grading details as
`submissions.details` holds them (one exact JSON text, whoever writes it), and their views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson

from common.grading.answers import Answers
from common.grading.key import AnswerKey, Correctness, QuestionResult
from common.grading.scoring import ScoreResult, score

__all__ = [
    "STATE_CODES",
    "DetailsEncoder",
    "GradedRow",
    "QuestionView",
    "chosen_lists",
    "details_json",
    "details_view",
    "encode_details",
    "graded_row",
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


def stored_answers(answers: Mapping[int, AbstractSet[int]], key: AnswerKey) -> dict[str, Any]:
    """Validated answers as stored, in the API's own shape: {"question id": option id} for a
    single-answer question, {"question id": [sorted option ids]} for a multiple one; answered
    questions only. That shape takes the parser's inline path when read back."""
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


@dataclass(frozen=True, slots=True)
class GradedRow:
    """A submission graded, in the form its row stores: what every writer (submit, import)
    writes, so the regrade finds the same text."""

    result: ScoreResult
    answers: dict[str, Any]  # submissions.answers
    details: list[list[Any]]  # submissions.details, as values
    details_text: str  # ... as the exact JSON text every writer stores


def graded_row(key: AnswerKey, answers: Answers) -> GradedRow:
    """Score validated answers and put them and their details in their stored forms."""
    result = score(key, answers)
    details = stored_details(result)
    return GradedRow(result, stored_answers(answers, key), details, encode_details(details))
