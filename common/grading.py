"""Scoring of multiple-choice submissions: pure, no I/O.

The API (instant score on submit) and the worker (bulk regrade) both call `score`, so a score
never depends on who computed it. Build an `AnswerKey` once per test (it validates itself and
precompiles one plan per question), then call `validate_answers` on untrusted input and `score`
on the normalised answers, as many times as needed.

Stored answers (a bulk regrade, statistics) go through `score_stored` / `score_json`: the same
results as `score(key, read_stored(key, ...))`, remembered per question and distinct answer.

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

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from itertools import chain
from math import isfinite
from typing import TypeGuard

import orjson

__all__ = [
    "AnswerError",
    "AnswerKey",
    "AnswerValidationError",
    "Answers",
    "Correctness",
    "InvalidKeyError",
    "QuestionKey",
    "QuestionResult",
    "Scheme",
    "ScoreResult",
    "key_changes_scores",
    "normalize_answers",
    "read_stored",
    "score",
    "score_json",
    "score_stored",
    "validate_answers",
]

DECIMALS = 4

Answers = dict[int, frozenset[int]]
RawAnswers = Mapping[int, object] | Mapping[str, object] | Mapping[int | str, object]


class Scheme(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"
    PARTIAL = "partial"
    NEGATIVE = "negative"


class Correctness(StrEnum):
    CORRECT = "correct"
    PARTIAL = "partial"
    INCORRECT = "incorrect"
    UNANSWERED = "unanswered"


class InvalidKeyError(ValueError):
    """The key itself is inconsistent (a bug in test authoring or in the caller)."""


# --------------------------------------------------------------------------- key


@dataclass(frozen=True, slots=True)
class QuestionKey:
    """One question of the key; option ids are unique across the whole test."""

    id: int
    points: float
    multiple: bool
    options: frozenset[int]
    correct: frozenset[int]
    scheme: Scheme | None = None  # None: use the test's scheme

    def __post_init__(self) -> None:
        # Coerce so that sets/lists/Decimals from the caller cannot break hashing or arithmetic.
        object.__setattr__(self, "points", float(self.points))
        object.__setattr__(self, "options", frozenset(self.options))
        object.__setattr__(self, "correct", frozenset(self.correct))
        if self.scheme is not None:
            object.__setattr__(self, "scheme", Scheme(self.scheme))
        where = f"question {self.id}"
        if not isfinite(self.points) or self.points < 0:
            raise InvalidKeyError(f"{where}: points must be a finite number >= 0")
        if not self.options:
            raise InvalidKeyError(f"{where}: has no options")
        if not self.correct <= self.options:
            raise InvalidKeyError(f"{where}: correct options are not among its options")
        if self.multiple and not self.correct:
            raise InvalidKeyError(f"{where}: needs at least one correct option")
        if not self.multiple and len(self.correct) != 1:
            raise InvalidKeyError(f"{where}: a single-answer question needs one correct option")


@dataclass(frozen=True, slots=True)
class QuestionResult:
    question_id: int
    points: float  # awarded; negative only under negative marking
    max_points: float
    answered: bool
    correctness: Correctness
    # Its index in the key's `results` (every result `score` can give is built with the key);
    # lets callers keep per-result data in a list. None for results built elsewhere.
    slot: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything `score` needs for one question, with every possible result built up front.

    Results are immutable, so scoring only picks one (no allocation in the hot loop). Two keys
    whose plans are equal give every submission the same score: `key_changes_scores` relies
    on that, so a plan must hold nothing that does not affect scores.
    """

    question_id: int
    correct: frozenset[int]
    full: QuestionResult
    wrong: QuestionResult
    blank: QuestionResult
    # partial credit only: table[hits][misses]; None means all-or-nothing (with penalty).
    table: tuple[tuple[QuestionResult, ...], ...] | None


def _result(qid: int, points: float, max_points: float, state: Correctness) -> QuestionResult:
    # "+ 0.0" turns -0.0 into 0.0.
    awarded = round(points, DECIMALS) + 0.0
    return QuestionResult(qid, awarded, max_points, state is not Correctness.UNANSWERED, state)


def _partial(q: QuestionKey, hits: int, misses: int) -> QuestionResult:
    n_wrong = len(q.options) - len(q.correct)  # >= misses >= 1 whenever misses count
    fraction = min(1.0, max(0.0, hits / len(q.correct) - (misses / n_wrong if misses else 0)))
    if hits == len(q.correct) and misses == 0:
        state = Correctness.CORRECT
    elif fraction > 0:
        state = Correctness.PARTIAL
    else:
        state = Correctness.INCORRECT
    return _result(q.id, fraction * q.points, q.points, state)


def _plan(q: QuestionKey, key: AnswerKey) -> _Plan:
    scheme = q.scheme or key.scheme
    blank = min(key.unanswered_mark, q.points)
    penalty = key.negative_fraction * q.points if scheme is Scheme.NEGATIVE else 0.0
    table = None
    if scheme is Scheme.PARTIAL and q.multiple:
        n_wrong = len(q.options) - len(q.correct)
        table = tuple(
            tuple(_partial(q, hits, misses) for misses in range(n_wrong + 1))
            for hits in range(len(q.correct) + 1)
        )
    return _Plan(
        question_id=q.id,
        correct=q.correct,
        full=_result(q.id, q.points, q.points, Correctness.CORRECT),
        wrong=_result(q.id, -penalty, q.points, Correctness.INCORRECT),
        blank=_result(q.id, blank, q.points, Correctness.UNANSWERED),
        table=table,
    )


# (question id, its options, multiple?, one shared frozenset per option): validation's fast
# path shares one-option answers instead of allocating millions of equal frozensets.
_Check = tuple[int, frozenset[int], bool, dict[int, frozenset[int]]]


@dataclass(frozen=True, slots=True)
class AnswerKey:
    """A test's key, compiled once: build it per test version and reuse it for every score.

    Raises InvalidKeyError if inconsistent. Hashable, so it can also key a cache.
    """

    questions: tuple[QuestionKey, ...]
    scheme: Scheme = Scheme.ALL_OR_NOTHING
    negative_fraction: float = 0.25  # share of the points a wrong answer loses
    unanswered_mark: float = 0.0  # points for an unanswered question
    # Derived once here so that scoring many submissions does no per-call setup.
    max_score: float = field(init=False, compare=False)
    _plans: tuple[_Plan, ...] = field(init=False, repr=False, compare=False)
    _by_id: dict[int, QuestionKey] = field(init=False, repr=False, compare=False)
    _owner: dict[int, int] = field(init=False, repr=False, compare=False)
    # By int id and by canonical JSON spelling: what validation's fast path needs to know.
    _lookup: dict[int | str, _Check] = field(init=False, repr=False, compare=False)
    # score_stored's memo: canonical JSON spelling of a question id -> {answer as stored (an
    # option id, a tuple of them or None): (the question's index in key order, its result)},
    # filled as answers are seen; and each question's index.
    _memo: dict[str, dict[object, tuple[int, QuestionResult]]] = field(
        init=False, repr=False, compare=False
    )
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _blanks: tuple[QuestionResult, ...] = field(init=False, repr=False, compare=False)
    # Every result `score` can hand out for this key, indexed by QuestionResult.slot.
    results: tuple[QuestionResult, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "questions", tuple(self.questions))
        object.__setattr__(self, "scheme", Scheme(self.scheme))
        if not (isfinite(self.negative_fraction) and 0 <= self.negative_fraction <= 1):
            raise InvalidKeyError("negative_fraction must be between 0 and 1")
        if not (isfinite(self.unanswered_mark) and self.unanswered_mark >= 0):
            raise InvalidKeyError("unanswered_mark must be a finite number >= 0")
        by_id: dict[int, QuestionKey] = {}
        owner: dict[int, int] = {}
        for q in self.questions:
            if q.id in by_id:
                raise InvalidKeyError(f"question {q.id} appears twice")
            by_id[q.id] = q
            for option in q.options:
                if option in owner:
                    raise InvalidKeyError(
                        f"option {option} belongs to questions {owner[option]} and {q.id}"
                    )
                owner[option] = q.id
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_owner", owner)
        lookup: dict[int | str, _Check] = {}
        for qid, q in by_id.items():
            singles = {option: frozenset((option,)) for option in q.options}
            lookup[qid] = lookup[str(qid)] = (qid, q.options, q.multiple, singles)
        object.__setattr__(self, "_lookup", lookup)
        plans = tuple(_plan(q, self) for q in self.questions)
        object.__setattr__(self, "_plans", plans)
        object.__setattr__(self, "_memo", {str(plan.question_id): {} for plan in plans})
        object.__setattr__(self, "_index", {str(p.question_id): i for i, p in enumerate(plans)})
        object.__setattr__(self, "_blanks", tuple(plan.blank for plan in plans))
        results: list[QuestionResult] = []
        for plan in plans:
            table = chain.from_iterable(plan.table or ())
            for result in (plan.full, plan.wrong, plan.blank, *table):
                object.__setattr__(result, "slot", len(results))
                results.append(result)
        object.__setattr__(self, "results", tuple(results))
        max_score = round(sum(q.points for q in self.questions), DECIMALS)
        object.__setattr__(self, "max_score", max_score)


def key_changes_scores(old: AnswerKey, new: AnswerKey) -> bool:
    """True if some submission could score differently under `new` than under `old`.

    Compares the compiled plans, i.e. exactly what `score` reads, so edits that cannot change
    a score (question order, wording, the `multiple` flag or option count outside partial
    credit, the penalty fraction when no question is negatively marked) need no regrade.
    """
    return {p.question_id: p for p in old._plans} != {p.question_id: p for p in new._plans}


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class AnswerError:
    path: str  # e.g. "answers.17" or "answers.17.2" (index 2 of that question's list)
    code: str
    message: str


class AnswerValidationError(ValueError):
    def __init__(self, errors: Sequence[AnswerError]) -> None:
        self.errors: list[AnswerError] = list(errors)
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in self.errors))


def _question_id(raw: object) -> int | None:
    # JSON object keys arrive as strings; accept only canonical decimals ("17", not "017",
    # " 17" or "1_7", which int() would take) so that one id has one spelling.
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            value = int(raw)
        except ValueError:
            return None
        return value if str(value) == raw else None
    return None


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(raw: RawAnswers, key: AnswerKey | None, root: str) -> tuple[Answers, list[AnswerError]]:
    answers: Answers = {}
    errors: list[AnswerError] = []
    for raw_qid, value in raw.items():
        path = f"{root}.{raw_qid}"
        qid = _question_id(raw_qid)
        if qid is None:
            errors.append(AnswerError(path, "invalid_question_id", "not an integer id"))
            continue
        if qid in answers:
            errors.append(AnswerError(path, "duplicate_question", f"question {qid} repeated"))
            continue
        question = None
        if key is not None:
            question = key._by_id.get(qid)
            if question is None:
                errors.append(AnswerError(path, "unknown_question", f"no question {qid}"))
                continue
        # (element path, option) pairs; a bare int is a one-option answer.
        items: list[tuple[str, object]]
        if value is None:
            items = []
        elif isinstance(value, list | tuple):
            items = [(f"{path}.{i}", v) for i, v in enumerate(value)]
            if question is not None and not question.multiple and items:
                errors.append(
                    AnswerError(
                        path, "single_answer", "a single-answer question takes one option id"
                    )
                )
        else:
            items = [(path, value)]
        chosen: set[int] = set()
        for item_path, option in items:
            if not _is_id(option):
                errors.append(AnswerError(item_path, "invalid_option", "not an integer id"))
                continue
            if option in chosen:
                errors.append(
                    AnswerError(item_path, "duplicate_option", f"option {option} repeated")
                )
                continue
            chosen.add(option)
            if key is not None:
                owner = key._owner.get(option)
                if owner is None:
                    errors.append(AnswerError(item_path, "unknown_option", f"no option {option}"))
                elif owner != qid:
                    errors.append(
                        AnswerError(
                            item_path,
                            "foreign_option",
                            f"option {option} belongs to question {owner}",
                        )
                    )
        answers[qid] = frozenset(chosen)
    return answers, errors


_EMPTY: frozenset[int] = frozenset()


def _fast_validate(raw: RawAnswers, key: AnswerKey) -> Answers | None:
    """The common, valid case without error bookkeeping; None as soon as anything looks off.

    `_parse` then walks the input again to name every problem. Keeping the two apart makes
    bulk validation several times faster.
    """
    lookup = key._lookup
    out: Answers = {}
    for raw_qid, value in raw.items():
        # The type test keeps 17.0 and True from matching question 17 and 1.
        entry = lookup.get(raw_qid) if type(raw_qid) is str or type(raw_qid) is int else None
        if entry is None:
            return None
        qid, options, multiple, singles = entry
        if qid in out:
            return None
        if type(value) is int:
            chosen = singles.get(value)
            if chosen is None:
                return None
        elif type(value) is list:
            for option in value:
                if type(option) is not int:  # bools and floats hash like ints: refuse them
                    return None
            chosen = frozenset(value)
            if len(chosen) != len(value) or not chosen <= options:
                return None
            if chosen and not multiple:
                return None
        elif value is None:
            chosen = _EMPTY
        else:
            return None
        out[qid] = chosen
    return out


@lru_cache(maxsize=16384)
def _canonical_id(text: str) -> int | None:
    # Cached because a bulk regrade converts the same few thousand JSON keys millions of
    # times; negative or odd spellings return None and are left to _parse.
    if text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
        return int(text)
    return None


def _fast_normalize(raw: RawAnswers) -> Answers | None:
    out: Answers = {}
    for raw_qid, value in raw.items():
        if type(raw_qid) is str:
            qid = _canonical_id(raw_qid)
            if qid is None:
                return None
        elif type(raw_qid) is int:
            qid = raw_qid
        else:
            return None
        if qid in out:
            return None
        if type(value) is int:
            chosen = frozenset((value,))
        elif type(value) is list:
            for option in value:
                if type(option) is not int:
                    return None
            chosen = frozenset(value)
            if len(chosen) != len(value):
                return None
        elif value is None:
            chosen = _EMPTY
        else:
            return None
        out[qid] = chosen
    return out


def validate_answers(key: AnswerKey, raw: RawAnswers, *, root: str = "answers") -> Answers:
    """Check untrusted answers against the key and normalise them.

    `raw` maps question ids (ints, or canonical decimal strings from JSON) to an option id or
    a list of option ids; an empty list or None means unanswered. Single-answer questions take
    a bare option id (or [] / None). Raises AnswerValidationError listing every problem.
    """
    fast = _fast_validate(raw, key)
    if fast is not None:
        return fast
    answers, errors = _parse(raw, key, root)
    if errors:
        raise AnswerValidationError(errors)
    return answers


def normalize_answers(raw: RawAnswers, *, root: str = "answers") -> Answers:
    """Only the shape checks of `validate_answers`, for answers validated when submitted.

    The worker uses this on stored answers: after a key edit they may name questions or
    options the key no longer has, which `score` tolerates but validation would reject.
    """
    fast = _fast_normalize(raw)
    if fast is not None:
        return fast
    answers, errors = _parse(raw, None, root)
    if errors:
        raise AnswerValidationError(errors)
    return answers


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True, slots=True)
class ScoreResult:
    score: float  # clamped at 0, see module docstring
    max_score: float
    percentage: float  # 0..100; 0 when max_score is 0
    questions: tuple[QuestionResult, ...]  # in key order


def _partial_result(plan: _Plan, chosen: AbstractSet[int]) -> QuestionResult:
    assert plan.table is not None
    hits = len(chosen & plan.correct)
    misses = len(chosen) - hits
    row = plan.table[hits]
    if misses < len(row):
        return row[misses]
    # More misses than the key has wrong options: some chosen options are not in the key (a
    # stale answer after an edit). Counted as wrong options they would cost more than the
    # whole credit (misses / n_wrong > 1), so the answer scores zero.
    return plan.wrong


def _question_result(plan: _Plan, chosen: AbstractSet[int]) -> QuestionResult:
    if not chosen:
        return plan.blank
    if chosen == plan.correct:
        return plan.full
    if plan.table is None:
        return plan.wrong
    return _partial_result(plan, chosen)


def _total(key: AnswerKey, results: Sequence[QuestionResult]) -> ScoreResult:
    # Added left to right in key order, so that every caller adds the same floats alike (not
    # sum(): from Python 3.12 it compensates rounding).
    total = 0.0
    for result in results:
        total += result.points
    total = max(0.0, round(total, DECIMALS)) + 0.0
    maximum = key.max_score
    percentage = round(100.0 * total / maximum, DECIMALS) if maximum > 0 else 0.0
    return ScoreResult(total, maximum, percentage, tuple(results))


def score(key: AnswerKey, answers: Mapping[int, AbstractSet[int]]) -> ScoreResult:
    """Score normalised answers (from `validate_answers` or `normalize_answers`).

    Questions missing from `answers` are unanswered; answers to questions not in the key are
    ignored; an option that is not in the key counts as a wrong choice.
    """
    empty: AbstractSet[int] = _EMPTY
    return _total(key, [_question_result(p, answers.get(p.question_id, empty)) for p in key._plans])


def read_stored(key: AnswerKey, stored: RawAnswers) -> Answers:
    """Stored answers, normalised for `score`: validated against the current key when they
    still fit it, else only shape-checked (after a key edit they may name options or
    questions the key no longer has, which `score` tolerates).

    Raises AnswerValidationError (or TypeError / AttributeError) for data that is not answers.
    """
    try:
        return validate_answers(key, stored)
    except AnswerValidationError:
        return normalize_answers(stored)


# A question with many options could see very many distinct answers: stop learning there.
_MEMO_LIMIT = 4096


def score_stored(key: AnswerKey, stored: RawAnswers) -> ScoreResult:
    """`score(key, read_stored(key, stored))`, the same result, about twice as fast in bulk.

    A question's result depends only on its own answer, so each question remembers the result
    of every answer it has seen (as stored: an option id or a list of them). A new answer is
    validated and scored once, by the functions above; anything unusual (a key that is not
    a canonical JSON id, a stale or malformed answer) takes the full path instead.
    """
    memo, index = key._memo, key._index
    results = list(key._blanks)
    for raw_qid, value in stored.items():
        seen = memo.get(raw_qid) if type(raw_qid) is str else None
        if seen is None:
            return score(key, read_stored(key, stored))
        if type(value) is int or value is None:
            answer: object = value
        elif type(value) is list:
            for option in value:
                if type(option) is not int:  # 1.0 and True hash like 1: never look them up
                    return score(key, read_stored(key, stored))
            answer = tuple(value)
        else:
            return score(key, read_stored(key, stored))
        hit = seen.get(answer)
        if hit is None:
            chosen = _fast_validate({raw_qid: value}, key)
            if chosen is None:
                return score(key, read_stored(key, stored))
            i = index[str(raw_qid)]
            hit = (i, _question_result(key._plans[i], chosen[key._plans[i].question_id]))
            if len(seen) < _MEMO_LIMIT:
                seen[answer] = hit
        results[hit[0]] = hit[1]
    return _total(key, results)


def score_json(key: AnswerKey, text: str | bytes) -> ScoreResult:
    """`score_stored(key, json.loads(text))`, faster still for answers stored as JSON text.

    Without "." or "e"/"E" in the text, JSON can hold no float and no true/false, so every
    number orjson returns is an int and a stored answer can be looked up as it is, with no
    per-option type test. Raises orjson.JSONDecodeError for text that is not JSON.
    """
    stored = orjson.loads(text)
    if type(text) is str:
        plain = "." not in text and "e" not in text and "E" not in text
    else:
        plain = b"." not in text and b"e" not in text and b"E" not in text
    if not plain or type(stored) is not dict:
        return score_stored(key, stored)
    memo = key._memo
    results = list(key._blanks)
    try:
        for raw_qid, value in stored.items():
            hit = memo[raw_qid][tuple(value) if type(value) is list else value]
            results[hit[0]] = hit[1]
    except (KeyError, TypeError):  # not seen yet (score_stored learns it), or unhashable
        return score_stored(key, stored)
    return _total(key, results)
