"""Reading answers: the one parser of the answer format, strict or shape-only.

The format: a mapping of question ids (ints, or canonical decimal strings as JSON object keys
give them) to an option id or a list of option ids; an empty list or None means unanswered.
Single-answer questions take a bare option id (or [] / None).

- `validate_answers(key, raw)`: untrusted input (a submit, a CSV import) against the key.
- `normalize_answers(raw)`: answers validated when they were submitted (stored ones); shape
  checks only, since after a key edit they may name questions or options the key no longer
  has, which scoring tolerates.

Both raise AnswerValidationError listing every problem, with its path ("answers.17.2").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from common.grading.key import AnswerKey, QuestionCheck

Answers = dict[int, frozenset[int]]
RawAnswers = Mapping[int, object] | Mapping[str, object] | Mapping[int | str, object]

_EMPTY: frozenset[int] = frozenset()
_NO_LOOKUP: Mapping[Any, Any] = {}


@dataclass(frozen=True, slots=True)
class AnswerError:
    path: str  # e.g. "answers.17" or "answers.17.2" (index 2 of that question's list)
    code: str
    message: str


class AnswerValidationError(ValueError):
    def __init__(self, errors: Sequence[AnswerError]) -> None:
        self.errors: list[AnswerError] = list(errors)
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in self.errors))


def validate_answers(key: AnswerKey, raw: RawAnswers, *, root: str = "answers") -> Answers:
    """Check untrusted answers against the key and normalise them."""
    return _parse(raw, key, root)


def normalize_answers(raw: RawAnswers, *, root: str = "answers") -> Answers:
    """Only the shape checks of `validate_answers`, for answers validated when submitted."""
    return _parse(raw, None, root)


@lru_cache(maxsize=16384)
def _id_of_text(text: str) -> int | None:
    # Canonical decimals only ("17", not "017", " 17" or "1_7", which int() would take), so
    # that one id has one spelling. Cached: a bulk read converts the same keys again and again.
    try:
        value = int(text)
    except ValueError:
        return None
    return value if str(value) == text else None


def _parse(raw: RawAnswers, key: AnswerKey | None, root: str) -> Answers:
    """The parser. The common, valid answer takes the few type tests inline; anything else is
    explained by `_explain` (which also accepts the odd valid shape, e.g. a tuple)."""
    strict = key is not None
    lookup: Mapping[Any, QuestionCheck] = key._lookup if key is not None else _NO_LOOKUP
    options: frozenset[int] = _EMPTY
    multiple = True
    singles: Mapping[int, frozenset[int]] = _NO_LOOKUP
    answers: Answers = {}
    errors: list[AnswerError] = []
    for raw_qid, value in raw.items():
        # The type test keeps 17.0 and True from matching question 17 and 1.
        check = lookup.get(raw_qid) if type(raw_qid) is str or type(raw_qid) is int else None
        if check is not None:
            qid, options, multiple, singles = check
        else:
            # An int (not a bool or float) or a canonical decimal string.
            if type(raw_qid) is str:
                found = _id_of_text(raw_qid)
            else:
                found = raw_qid if type(raw_qid) is int else None
            if found is None:
                errors.append(
                    AnswerError(f"{root}.{raw_qid}", "invalid_question_id", "not an integer id")
                )
                continue
            qid = found
            if strict:  # never in `answers`, so never a duplicate
                message = f"no question {qid}"
                errors.append(AnswerError(f"{root}.{raw_qid}", "unknown_question", message))
                continue
        if qid in answers:
            errors.append(
                AnswerError(f"{root}.{raw_qid}", "duplicate_question", f"question {qid} repeated")
            )
            continue
        chosen: frozenset[int] | None = None
        if type(value) is int:
            chosen = singles.get(value) if strict else frozenset((value,))
        elif type(value) is list:
            # bools and floats hash like ints: refuse them here (the type test), name them below.
            for option in value:
                if type(option) is not int:
                    break
            else:
                chosen = frozenset(value)
                if len(chosen) != len(value) or (
                    strict and (not chosen <= options or (chosen and not multiple))
                ):
                    chosen = None
        elif value is None:
            chosen = _EMPTY
        if chosen is None:
            single = strict and not multiple
            chosen = _explain(f"{root}.{raw_qid}", qid, value, single, key, errors)
        answers[qid] = chosen
    if errors:
        raise AnswerValidationError(errors)
    return answers


def _explain(
    path: str,
    qid: int,
    value: object,
    single: bool,
    key: AnswerKey | None,
    errors: list[AnswerError],
) -> frozenset[int]:
    """One question's answer the inline checks refused: its options, every problem named."""
    # (element path, option) pairs; a bare value is a one-option answer.
    items: list[tuple[str, object]]
    if value is None:
        items = []
    elif isinstance(value, list | tuple):
        items = [(f"{path}.{i}", v) for i, v in enumerate(value)]
        if single and items:
            errors.append(
                AnswerError(path, "single_answer", "a single-answer question takes one option id")
            )
    else:
        items = [(path, value)]
    chosen: set[int] = set()
    for item_path, option in items:
        if not isinstance(option, int) or isinstance(option, bool):
            errors.append(AnswerError(item_path, "invalid_option", "not an integer id"))
            continue
        if option in chosen:
            errors.append(AnswerError(item_path, "duplicate_option", f"option {option} repeated"))
            continue
        chosen.add(option)
        if key is not None:
            owner = key._owner.get(option)
            if owner is None:
                errors.append(AnswerError(item_path, "unknown_option", f"no option {option}"))
            elif owner != qid:
                message = f"option {option} belongs to question {owner}"
                errors.append(AnswerError(item_path, "foreign_option", message))
    return frozenset(chosen)
