"""A test's answer key, compiled once: every result a question can give is built up front.

`AnswerKey` validates itself and precompiles one `_Plan` per question; scoring then only picks
prebuilt results (no arithmetic, no allocation in the hot loop). Keys are immutable values:
equal keys (same questions and settings) compare and hash alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from math import isfinite
from typing import Any, Protocol

DECIMALS = 4


def max_score(points: Iterable[float]) -> float:
    """A test's maximum: the sum of its questions' points, rounded like every figure."""
    return round(sum(points), DECIMALS)


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


class QuestionKey:
    """One question of the key; option ids are unique across the whole test.

    Takes what ORM rows give (sets, lists, Decimal points, scheme names) and stores it coerced,
    so keys built either way compare and hash alike. Treat it as immutable.
    """

    __slots__ = ("correct", "id", "multiple", "options", "points", "scheme")

    def __init__(
        self,
        id: int,
        points: float,
        multiple: bool,
        options: Iterable[int],
        correct: Iterable[int],
        scheme: Scheme | str | None = None,  # None: use the test's scheme
    ) -> None:
        self.id = id
        self.points = float(points)
        self.multiple = multiple
        self.options = frozenset(options)
        self.correct = frozenset(correct)
        self.scheme = Scheme(scheme) if scheme is not None else None
        where = f"question {id}"
        if not isfinite(self.points) or self.points < 0:
            raise InvalidKeyError(f"{where}: points must be a finite number >= 0")
        if not self.options:
            raise InvalidKeyError(f"{where}: has no options")
        if not self.correct <= self.options:
            raise InvalidKeyError(f"{where}: correct options are not among its options")
        if multiple and not self.correct:
            raise InvalidKeyError(f"{where}: needs at least one correct option")
        if not multiple and len(self.correct) != 1:
            raise InvalidKeyError(f"{where}: a single-answer question needs one correct option")

    def _value(self) -> tuple[Any, ...]:
        return (self.id, self.points, self.multiple, self.options, self.correct, self.scheme)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuestionKey):
            return NotImplemented
        return self._value() == other._value()

    def __hash__(self) -> int:
        return hash(self._value())

    def __repr__(self) -> str:
        return "QuestionKey({!r}, {!r}, {!r}, {!r}, {!r}, {!r})".format(*self._value())


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything scoring needs for one question, with every possible result built up front.

    Two keys whose plans are equal give every submission the same score: `key_changes_scores`
    relies on that, so a plan must hold nothing that does not affect scores.
    """

    question_id: int
    correct: frozenset[int]
    full: QuestionResult
    wrong: QuestionResult
    blank: QuestionResult
    # partial credit only: table[hits][misses]; None means all-or-nothing (with penalty).
    table: tuple[tuple[QuestionResult, ...], ...] | None


# (question id, its options, multiple?, one shared frozenset per option): what the answer
# parser needs to know about a question; shared one-option answers save millions of frozensets.
QuestionCheck = tuple[int, frozenset[int], bool, dict[int, frozenset[int]]]


class AnswerKey:
    """A test's key, compiled once: build it per test version and reuse it for every score.

    Raises InvalidKeyError if inconsistent. Hashable, so it can also key a cache. Treat it as
    immutable; everything derived from it is computed here, once.
    """

    __slots__ = (
        "_lookup",
        "_owner",
        "_plans",
        "max_score",
        "negative_fraction",
        "questions",
        "results",
        "scheme",
        "unanswered_mark",
    )

    def __init__(
        self,
        questions: Iterable[QuestionKey],
        scheme: Scheme | str = Scheme.ALL_OR_NOTHING,
        negative_fraction: float = 0.25,  # share of the points a wrong answer loses
        unanswered_mark: float = 0.0,  # points for an unanswered question
    ) -> None:
        self.questions: tuple[QuestionKey, ...] = tuple(questions)
        self.scheme = Scheme(scheme)
        self.negative_fraction = negative_fraction
        self.unanswered_mark = unanswered_mark
        if not (isfinite(negative_fraction) and 0 <= negative_fraction <= 1):
            raise InvalidKeyError("negative_fraction must be between 0 and 1")
        if not (isfinite(unanswered_mark) and unanswered_mark >= 0):
            raise InvalidKeyError("unanswered_mark must be a finite number >= 0")
        owner: dict[int, int] = {}
        # By int id and by canonical JSON spelling, so the parser needs no conversion.
        lookup: dict[int | str, QuestionCheck] = {}
        for q in self.questions:
            if q.id in lookup:
                raise InvalidKeyError(f"question {q.id} appears twice")
            for option in q.options:
                if option in owner:
                    raise InvalidKeyError(
                        f"option {option} belongs to questions {owner[option]} and {q.id}"
                    )
                owner[option] = q.id
            singles = {option: frozenset((option,)) for option in q.options}
            lookup[q.id] = lookup[str(q.id)] = (q.id, q.options, q.multiple, singles)
        self._owner = owner
        self._lookup = lookup
        # Every result scoring can hand out, indexed by QuestionResult.slot.
        results: list[QuestionResult] = []
        self._plans = tuple(_plan(q, self, results) for q in self.questions)
        self.results = tuple(results)
        self.max_score = max_score(q.points for q in self.questions)

    def _value(self) -> tuple[Any, ...]:
        return (self.questions, self.scheme, self.negative_fraction, self.unanswered_mark)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnswerKey):
            return NotImplemented
        return self._value() == other._value()

    def __hash__(self) -> int:
        return hash(self._value())

    def __repr__(self) -> str:
        return "AnswerKey({!r}, {!r}, {!r}, {!r})".format(*self._value())


def _plan(q: QuestionKey, key: AnswerKey, results: list[QuestionResult]) -> _Plan:
    def result(points: float, state: Correctness) -> QuestionResult:
        # "+ 0.0" turns -0.0 into 0.0.
        awarded = round(points, DECIMALS) + 0.0
        answered = state is not Correctness.UNANSWERED
        made = QuestionResult(q.id, awarded, q.points, answered, state, len(results))
        results.append(made)
        return made

    def partial(hits: int, misses: int) -> QuestionResult:
        n_wrong = len(q.options) - len(q.correct)  # >= misses >= 1 whenever misses count
        fraction = min(1.0, max(0.0, hits / len(q.correct) - (misses / n_wrong if misses else 0)))
        if hits == len(q.correct) and misses == 0:
            state = Correctness.CORRECT
        elif fraction > 0:
            state = Correctness.PARTIAL
        else:
            state = Correctness.INCORRECT
        return result(fraction * q.points, state)

    scheme = q.scheme or key.scheme
    penalty = key.negative_fraction * q.points if scheme is Scheme.NEGATIVE else 0.0
    full = result(q.points, Correctness.CORRECT)
    wrong = result(-penalty, Correctness.INCORRECT)
    blank = result(min(key.unanswered_mark, q.points), Correctness.UNANSWERED)
    table = None
    if scheme is Scheme.PARTIAL and q.multiple:
        n_wrong = len(q.options) - len(q.correct)
        table = tuple(
            tuple(partial(hits, misses) for misses in range(n_wrong + 1))
            for hits in range(len(q.correct) + 1)
        )
    return _Plan(q.id, q.correct, full, wrong, blank, table)


def key_changes_scores(old: AnswerKey, new: AnswerKey) -> bool:
    """True if some submission could score differently under `new` than under `old`.

    Compares the compiled plans, i.e. exactly what scoring reads, so edits that cannot change
    a score (question order, wording, the `multiple` flag or option count outside partial
    credit, the penalty fraction when no question is negatively marked) need no regrade.
    """
    return {p.question_id: p for p in old._plans} != {p.question_id: p for p in new._plans}


# --------------------------------------------------------------------------- from rows


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
        (
            QuestionKey(
                q.id,
                q.points,
                q.multiple,
                (o.id for o in q.options),
                (o.id for o in q.options if o.is_correct),
                q.scoring_scheme or None,
            )
            for q in questions
        ),
        scheme=test.scoring_scheme,
        negative_fraction=test.negative_fraction,
        unanswered_mark=test.unanswered_mark,
    )
