"""Scoring: `score` for one submission, `Scorer` for many stored ones. Pure, no I/O.

`Scorer(key).score_json(text)` gives exactly `score(key, normalize_answers(json.loads(text)))`:
a question's result depends only on its own answer, so the scorer remembers the result of
every answer it has seen, per question, and a bulk regrade mostly looks results up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import orjson

from common.grading.answers import _EMPTY, AnswerValidationError, normalize_answers
from common.grading.key import DECIMALS, AnswerKey, QuestionResult, _Plan


@dataclass(frozen=True, slots=True)
class ScoreResult:
    score: float  # clamped at 0, see the package docstring
    max_score: float
    percentage: float  # 0..100; 0 when max_score is 0
    questions: tuple[QuestionResult, ...]  # in key order


def _question_result(plan: _Plan, chosen: AbstractSet[int]) -> QuestionResult:
    if not chosen:
        return plan.blank
    if chosen == plan.correct:
        return plan.full
    if plan.table is None:
        return plan.wrong
    hits = len(chosen & plan.correct)
    row = plan.table[hits]
    misses = len(chosen) - hits
    if misses < len(row):
        return row[misses]
    # More misses than the key has wrong options: some chosen options are not in the key (a
    # stale answer after an edit). Counted as wrong options they would cost more than the
    # whole credit (misses / n_wrong > 1), so the answer scores zero.
    return plan.wrong


def _total(key: AnswerKey, results: Sequence[QuestionResult]) -> ScoreResult:
    # Added left to right in key order, so that every caller adds the same floats alike (not
    # sum(): from Python 3.12 it compensates rounding).
    total = 0.0
    for result in results:
        total += result.points
    total = max(0.0, round(total, DECIMALS)) + 0.0
    return ScoreResult(total, key.max_score, percentage(total, key.max_score), tuple(results))


def percentage(score: float, max_score: float) -> float:
    """0..100, rounded like every figure; 0 when the maximum is 0."""
    return round(100.0 * score / max_score, DECIMALS) if max_score > 0 else 0.0


def score(key: AnswerKey, answers: Mapping[int, AbstractSet[int]]) -> ScoreResult:
    """Score parsed answers (from `validate_answers` or `normalize_answers`).

    Questions missing from `answers` are unanswered; answers to questions not in the key are
    ignored; an option that is not in the key counts as a wrong choice.
    """
    empty: AbstractSet[int] = _EMPTY
    return _total(key, [_question_result(p, answers.get(p.question_id, empty)) for p in key._plans])


# A question with many options could see very many distinct answers: stop learning there.
_MEMO_LIMIT = 4096


class Scorer:
    """Scores many stored submissions of one key; remembers per question what it has seen.

    Keep one per job (or per request): the memory it learns is bounded per question.
    """

    def __init__(self, key: AnswerKey) -> None:
        self.key = key
        # Canonical JSON spelling of a question id -> {answer as stored (an option id, a tuple
        # of them, or None): (the question's index in key order, its result)}.
        self._memo: dict[str, dict[object, tuple[int, QuestionResult]]] = {
            str(plan.question_id): {} for plan in key._plans
        }
        self._index = {str(plan.question_id): i for i, plan in enumerate(key._plans)}
        self._blanks = tuple(plan.blank for plan in key._plans)

    def score_json(self, text: str | bytes) -> ScoreResult:
        """`score(key, normalize_answers(json.loads(text)))`, the same result, faster in bulk.

        Without "." or "e"/"E" in the text, JSON holds no float and no true/false, so every
        number is an int and a stored answer can be looked up as it is. Raises
        AnswerValidationError for answers of the wrong shape, orjson.JSONDecodeError (a
        ValueError) for text that is not JSON, AttributeError for JSON that is not an object.
        """
        stored = orjson.loads(text)
        if type(text) is str:
            plain = "." not in text and "e" not in text and "E" not in text
        else:
            plain = b"." not in text and b"e" not in text and b"E" not in text
        if not plain or type(stored) is not dict:
            return score(self.key, normalize_answers(stored))
        memo = self._memo
        results = list(self._blanks)
        try:
            for raw_qid, value in stored.items():
                hit = memo[raw_qid][tuple(value) if type(value) is list else value]
                results[hit[0]] = hit[1]
        except (KeyError, TypeError):  # not seen yet (learn it), or unhashable
            return self._learn(stored)
        return _total(self.key, results)

    def _learn(self, stored: dict[str, object]) -> ScoreResult:
        results = list(self._blanks)
        for raw_qid, value in stored.items():
            seen = self._memo.get(raw_qid)
            if seen is None:  # no question of the key, or an odd spelling of its id
                return score(self.key, normalize_answers(stored))
            answer = tuple(value) if type(value) is list else value
            try:
                hit = seen.get(answer)
            except TypeError:  # unhashable: nested lists or objects, refused below
                return score(self.key, normalize_answers(stored))
            if hit is None:
                try:
                    chosen = normalize_answers({raw_qid: value})
                except AnswerValidationError:
                    return score(self.key, normalize_answers(stored))  # names every problem
                i = self._index[raw_qid]
                plan = self.key._plans[i]
                hit = (i, _question_result(plan, chosen[plan.question_id]))
                if len(seen) < _MEMO_LIMIT:
                    seen[answer] = hit
            results[hit[0]] = hit[1]
        return _total(self.key, results)
