"""Grading, in one package: the answer key, reading answers, scoring, the stored formats, the
per-test grading lock (`common.grading.lock`) and the cache scopes that follow grades
(`common.grading.cache_scopes`). Everything but those two is pure, no I/O.

The API (instant score on submit, statistics) and the worker (regrade, import) all score
through here, so a score never depends on who computed it:

    key = answer_key(test, questions)            # once per test version (key.py)
    answers = validate_answers(key, raw)         # untrusted input (answers.py)
    result = score(key, answers)                 # the one scoring function (scoring.py)
    Scorer(key).score_json(text)                 # the same, for many stored answers
    row = graded_row(key, answers)               # score + what the database holds (stored.py)

Schemes (per test, overridable per question):
- all_or_nothing: full points iff the chosen set equals the correct set, else 0.
- partial: multiple-answer questions score Moodle style, each correct option chosen adds
  1/n_correct, each wrong one subtracts 1/n_wrong, clamped to [0, 1], times the points;
  single-answer questions behave as all_or_nothing.
- negative: a wrong (non-empty, not exactly correct) answer scores -fraction * points, for
  single- and multiple-answer questions alike.
An unanswered question scores the test's unanswered mark under every scheme (capped at the
question's points, so a score never exceeds the maximum). Like Moodle, the total is clamped at 0:
penalties can cancel credit but never push a student below zero. All figures are rounded to 4
decimals; the total is the sum of the rounded per-question points, so the parts add up.
"""

from __future__ import annotations

from common.grading.answers import (
    AnswerError,
    Answers,
    AnswerValidationError,
    RawAnswers,
    normalize_answers,
    validate_answers,
)
from common.grading.key import (
    AnswerKey,
    Correctness,
    InvalidKeyError,
    QuestionKey,
    QuestionResult,
    Scheme,
    answer_key,
    key_changes_scores,
    max_score,
)
from common.grading.scoring import Scorer, ScoreResult, percentage, score
from common.grading.stored import (
    STATE_CODES,
    DetailsEncoder,
    GradedRow,
    QuestionView,
    chosen_lists,
    details_json,
    details_view,
    encode_details,
    graded_row,
    stored_answers,
    stored_details,
)

__all__ = [
    "STATE_CODES",
    "AnswerError",
    "AnswerKey",
    "AnswerValidationError",
    "Answers",
    "Correctness",
    "DetailsEncoder",
    "GradedRow",
    "InvalidKeyError",
    "QuestionKey",
    "QuestionResult",
    "QuestionView",
    "RawAnswers",
    "Scheme",
    "ScoreResult",
    "Scorer",
    "answer_key",
    "chosen_lists",
    "details_json",
    "details_view",
    "encode_details",
    "graded_row",
    "key_changes_scores",
    "max_score",
    "normalize_answers",
    "percentage",
    "score",
    "stored_answers",
    "stored_details",
    "validate_answers",
]
