"""Scoring and answer validation, against vectors computed by hand (arithmetic in comments)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from common.grading import (
    AnswerKey,
    AnswerValidationError,
    Correctness,
    InvalidKeyError,
    QuestionKey,
    Scheme,
    Scorer,
    ScoreResult,
    key_changes_scores,
    normalize_answers,
    score,
    validate_answers,
)

C, P, X, U = (
    Correctness.CORRECT,
    Correctness.PARTIAL,
    Correctness.INCORRECT,
    Correctness.UNANSWERED,
)

# The test used throughout (max 2 + 3 + 1 = 6 points):
#   Q1: 2 points, single answer, options 11..14, correct 11
#   Q2: 3 points, multiple, options 21..25, correct {21, 22}: n_correct 2, n_wrong 3
#   Q3: 1 point, multiple, options 31..34, correct {31, 32, 33}: n_correct 3, n_wrong 1
Q1 = QuestionKey(1, 2.0, False, frozenset({11, 12, 13, 14}), frozenset({11}))
Q2 = QuestionKey(2, 3.0, True, frozenset({21, 22, 23, 24, 25}), frozenset({21, 22}))
Q3 = QuestionKey(3, 1.0, True, frozenset({31, 32, 33, 34}), frozenset({31, 32, 33}))


def make_key(scheme: Scheme = Scheme.ALL_OR_NOTHING, **kw: float) -> AnswerKey:
    return AnswerKey((Q1, Q2, Q3), scheme=scheme, **kw)


def run(key: AnswerKey, raw: dict[str, object]) -> ScoreResult:
    return score(key, validate_answers(key, raw))


def outcome(result: ScoreResult) -> list[tuple[float, Correctness]]:
    return [(q.points, q.correctness) for q in result.questions]


# --------------------------------------------------------------------------- all or nothing


def test_all_or_nothing_vectors() -> None:
    key = make_key()
    r = run(key, {"1": 11, "2": [22, 21], "3": [31, 32]})
    # Q1 right: 2; Q2 exactly {21, 22}: 3; Q3 {31, 32} misses 33: 0. Total 5 of 6 = 83.3333 %.
    assert outcome(r) == [(2.0, C), (3.0, C), (0.0, X)]
    assert (r.score, r.max_score, r.percentage) == (5.0, 6.0, 83.3333)

    r = run(key, {"1": 12, "2": [21, 22, 23]})
    # Q1 wrong: 0; Q2 has an extra wrong option: 0; Q3 absent: unanswered, 0.
    assert outcome(r) == [(0.0, X), (0.0, X), (0.0, U)]
    assert (r.score, r.percentage) == (0.0, 0.0)
    assert [q.answered for q in r.questions] == [True, True, False]
    assert [q.max_points for q in r.questions] == [2.0, 3.0, 1.0]


def test_empty_list_and_none_mean_unanswered() -> None:
    r = run(make_key(), {"1": [], "2": [], "3": None})
    assert outcome(r) == [(0.0, U), (0.0, U), (0.0, U)]
    assert not any(q.answered for q in r.questions)


# --------------------------------------------------------------------------- partial


@pytest.mark.parametrize(
    ("q2", "expected"),
    [
        ([21, 22], (3.0, C)),  # 1/2 + 1/2 = 1 -> 3
        ([21], (1.5, P)),  # 1/2 -> 1.5
        ([21, 23], (0.5, P)),  # 1/2 - 1/3 = 1/6 -> 0.5
        ([21, 22, 23], (2.0, P)),  # 1 - 1/3 = 2/3 -> 2
        ([21, 23, 24], (0.0, X)),  # 1/2 - 2/3 < 0 -> clamped to 0
        ([23], (0.0, X)),  # -1/3 -> 0
        ([21, 22, 23, 24, 25], (0.0, X)),  # 1 - 3/3 = 0: ticking everything earns nothing
    ],
)
def test_partial_credit_multiple(q2: list[int], expected: tuple[float, Correctness]) -> None:
    r = run(make_key(Scheme.PARTIAL), {"2": q2})
    assert outcome(r)[1] == expected


def test_partial_rounds_to_four_decimals() -> None:
    r = run(make_key(Scheme.PARTIAL), {"3": [31], "2": [21]})
    # Q3: 1/3 of 1 point = 0.33333 -> 0.3333; Q2: 1/2 of 3 = 1.5. Total 1.8333 of 6 = 30.555 %
    assert outcome(r) == [(0.0, U), (1.5, P), (0.3333, P)]
    assert (r.score, r.percentage) == (1.8333, 30.555)
    r = run(make_key(Scheme.PARTIAL), {"3": [31, 32]})
    assert outcome(r)[2] == (0.6667, P)  # 2/3 = 0.66667 -> 0.6667
    r = run(make_key(Scheme.PARTIAL), {"3": [31, 34]})
    assert outcome(r)[2] == (0.0, X)  # 1/3 - 1/1 < 0 -> 0


def test_partial_single_answer_is_all_or_nothing() -> None:
    r = run(make_key(Scheme.PARTIAL), {"1": 12})
    assert outcome(r)[0] == (0.0, X)
    r = run(make_key(Scheme.PARTIAL), {"1": 11})
    assert outcome(r)[0] == (2.0, C)


# --------------------------------------------------------------------------- negative


def test_negative_marking_vectors() -> None:
    key = make_key(Scheme.NEGATIVE, negative_fraction=0.25)
    r = run(key, {"1": 11, "2": [21]})
    # Q1 right: +2; Q2 {21} is not exactly right: -0.25 * 3 = -0.75; Q3 unanswered: 0.
    # Total 2 - 0.75 = 1.25 of 6 = 20.8333 %.
    assert outcome(r) == [(2.0, C), (-0.75, X), (0.0, U)]
    assert (r.score, r.percentage) == (1.25, 20.8333)


def test_negative_total_is_clamped_at_zero() -> None:
    key = make_key(Scheme.NEGATIVE, negative_fraction=0.25)
    r = run(key, {"1": 12, "2": [23], "3": [34]})
    # -0.25*2 - 0.25*3 - 0.25*1 = -0.5 - 0.75 - 0.25 = -1.5: the total shows 0 (Moodle), the
    # questions keep their penalties.
    assert outcome(r) == [(-0.5, X), (-0.75, X), (-0.25, X)]
    assert (r.score, r.percentage) == (0.0, 0.0)


def test_negative_fraction_other_than_default() -> None:
    key = make_key(Scheme.NEGATIVE, negative_fraction=1 / 3)
    r = run(key, {"1": 13, "2": [21, 22], "3": [31, 32, 33]})
    # Q1: -(1/3)*2 = -0.66667 -> -0.6667; Q2 +3; Q3 +1. Total 3.3333 of 6 = 55.555 %.
    assert outcome(r) == [(-0.6667, X), (3.0, C), (1.0, C)]
    assert (r.score, r.percentage) == (3.3333, 55.555)


def test_per_question_scheme_override() -> None:
    q2 = QuestionKey(2, 3.0, True, Q2.options, Q2.correct, scheme=Scheme.PARTIAL)
    key = AnswerKey((Q1, q2, Q3), scheme=Scheme.NEGATIVE, negative_fraction=0.5)
    r = run(key, {"1": 12, "2": [21], "3": [31]})
    # Q1 negative: -0.5*2 = -1; Q2 partial: 1/2*3 = 1.5; Q3 negative: -0.5*1 = -0.5. Total 0.
    assert outcome(r) == [(-1.0, X), (1.5, P), (-0.5, X)]
    assert r.score == 0.0


# --------------------------------------------------------------------------- unanswered mark


def test_unanswered_mark_applies_under_every_scheme() -> None:
    for scheme in Scheme:
        r = run(make_key(scheme, unanswered_mark=0.5), {"1": 11})
        # Q1 +2; Q2 and Q3 unanswered: 0.5 each. Total 3 of 6 = 50 %.
        assert outcome(r) == [(2.0, C), (0.5, U), (0.5, U)], scheme
        assert (r.score, r.percentage) == (3.0, 50.0)


def test_unanswered_mark_is_capped_at_the_question_points() -> None:
    r = run(make_key(unanswered_mark=1.5), {})
    # Q1 1.5; Q2 1.5; Q3 min(1.5, 1) = 1. Total 4 of 6 = 66.6667 %.
    assert outcome(r) == [(1.5, U), (1.5, U), (1.0, U)]
    assert (r.score, r.percentage) == (4.0, 66.6667)


def test_zero_maximum_gives_zero_percentage() -> None:
    key = AnswerKey((QuestionKey(1, 0.0, False, frozenset({1, 2}), frozenset({1})),))
    r = run(key, {"1": 1})
    assert (r.score, r.max_score, r.percentage) == (0.0, 0.0, 0.0)
    assert outcome(r) == [(0.0, C)]
    empty = score(AnswerKey(()), {})
    assert (empty.score, empty.max_score, empty.percentage, empty.questions) == (0, 0, 0, ())


def test_float_points_do_not_leave_crumbs() -> None:
    # 0.1 + 0.2 = 0.30000000000000004 in floats; the total is rounded to 4 decimals.
    qs = (
        QuestionKey(1, 0.1, False, frozenset({1, 2}), frozenset({1})),
        QuestionKey(2, 0.2, False, frozenset({3, 4}), frozenset({3})),
    )
    r = run(AnswerKey(qs), {"1": 1, "2": 3})
    assert (r.score, r.max_score, r.percentage) == (0.3, 0.3, 100.0)


# --------------------------------------------------------------------------- answer input


def test_str_and_int_question_ids_are_the_same() -> None:
    key = make_key(Scheme.PARTIAL)
    from_json = json.loads('{"1": 11, "2": [21, 23], "3": []}')
    as_ints = {1: 11, 2: [23, 21], 3: []}
    expected = {1: frozenset({11}), 2: frozenset({21, 23}), 3: frozenset()}
    assert validate_answers(key, from_json) == validate_answers(key, as_ints) == expected
    assert normalize_answers(from_json) == expected


def test_order_does_not_matter() -> None:
    key = make_key(Scheme.PARTIAL)
    a = run(key, {"1": 11, "2": [21, 23], "3": [33, 31]})
    b = run(key, {"3": [31, 33], "2": [23, 21], "1": 11})
    assert a == b
    # Question order in the key changes only the order of the per-question results.
    shuffled = AnswerKey((Q3, Q1, Q2), scheme=Scheme.PARTIAL)
    c = run(shuffled, {"1": 11, "2": [21, 23], "3": [33, 31]})
    assert c.score == a.score == 3.1667  # 2 + 0.5 + 2/3 = 3.16667 -> 3.1667
    assert sorted(c.questions, key=lambda q: q.question_id) == list(a.questions)


def errors_of(key: AnswerKey, raw: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(AnswerValidationError) as info:
        validate_answers(key, raw)
    return [(e.path, e.code) for e in info.value.errors]


def test_validation_errors_carry_paths_and_codes() -> None:
    raw: dict[str, object] = {
        "1": [11, 12],  # a list for a single-answer question
        "2": [21, 21, 99, 31, "x", True],  # duplicate, unknown, foreign, non-ids
        "7": 1,  # no such question
        "abc": 1,  # not an id
        "3": 12,  # option of question 1
    }
    assert errors_of(make_key(), raw) == [
        ("answers.1", "single_answer"),
        ("answers.2.1", "duplicate_option"),
        ("answers.2.2", "unknown_option"),
        ("answers.2.3", "foreign_option"),
        ("answers.2.4", "invalid_option"),
        ("answers.2.5", "invalid_option"),
        ("answers.7", "unknown_question"),
        ("answers.abc", "invalid_question_id"),
        ("answers.3", "foreign_option"),
    ]


def test_validation_messages_and_exception() -> None:
    with pytest.raises(AnswerValidationError) as info:
        validate_answers(make_key(), {"3": 12})
    (error,) = info.value.errors
    assert error.message == "option 12 belongs to question 1"
    assert "answers.3: option 12 belongs to question 1" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"1": [11]}, [("answers.1", "single_answer")]),  # a one-element list is still a list
        ({"1": 11.0}, [("answers.1", "invalid_option")]),  # floats are not ids
        ({"1": "11"}, [("answers.1", "invalid_option")]),
        ({"1": True}, [("answers.1", "invalid_option")]),
        ({"1": 99}, [("answers.1", "unknown_option")]),
        ({"017": 11}, [("answers.017", "invalid_question_id")]),  # int() would take these
        ({" 1": 11}, [("answers. 1", "invalid_question_id")]),
        ({"1": 11, 1: 11}, [("answers.1", "duplicate_question")]),
        ({1.0: 11}, [("answers.1.0", "invalid_question_id")]),
        ({"2": {"21": True}}, [("answers.2", "invalid_option")]),
    ],
)
def test_validation_edge_cases(raw: dict[str, object], expected: list[tuple[str, str]]) -> None:
    assert errors_of(make_key(), raw) == expected


def test_custom_root_path() -> None:
    with pytest.raises(AnswerValidationError) as info:
        validate_answers(make_key(), {"9": 1}, root="body.answers")
    assert info.value.errors[0].path == "body.answers.9"


def test_multiple_answer_question_takes_a_bare_id() -> None:
    assert validate_answers(make_key(), {"2": 21}) == {2: frozenset({21})}


def test_normalize_checks_shape_only() -> None:
    # Stored answers may name questions/options a later key edit removed: no error here.
    assert normalize_answers({"9": [1, 2], "1": 99}) == {9: frozenset({1, 2}), 1: frozenset({99})}
    # The slow path (odd but valid input) agrees with the fast one.
    assert normalize_answers({"-3": (1,), "0": None}) == {-3: frozenset({1}), 0: frozenset()}
    assert validate_answers(make_key(), {"2": (22, 21)}) == {2: frozenset({21, 22})}
    with pytest.raises(AnswerValidationError) as info:
        normalize_answers({"1": [3, 3], "x": 1, "2": 2.5})
    assert [(e.path, e.code) for e in info.value.errors] == [
        ("answers.1.1", "duplicate_option"),
        ("answers.x", "invalid_question_id"),
        ("answers.2", "invalid_option"),
    ]


def test_score_tolerates_stale_answers() -> None:
    # Options not in the key count as wrong choices; unknown questions are ignored.
    key = make_key(Scheme.PARTIAL)
    r = score(key, {1: frozenset({99}), 2: frozenset({21, 98}), 3: frozenset({31, 32, 97}), 8: {1}})
    # Q1: wrong -> 0. Q2: 1/2 - 1/3 = 1/6 -> 0.5. Q3: 2/3 - 1/1 < 0 -> 0.
    assert outcome(r) == [(0.0, X), (0.5, P), (0.0, X)]
    # More misses than Q2 has wrong options (3): 1/2 - 4/3 < 0 -> 0.
    r = score(key, {2: frozenset({21, 23, 24, 25, 98})})
    assert outcome(r)[1] == (0.0, X)


# --------------------------------------------------------------------------- key checks


@pytest.mark.parametrize(
    "build",
    [
        lambda: QuestionKey(1, 1.0, False, frozenset({1, 2}), frozenset({1, 2})),
        lambda: QuestionKey(1, 1.0, False, frozenset({1, 2}), frozenset()),
        lambda: QuestionKey(1, 1.0, True, frozenset({1, 2}), frozenset()),
        lambda: QuestionKey(1, 1.0, True, frozenset({1, 2}), frozenset({3})),
        lambda: QuestionKey(1, 1.0, True, frozenset(), frozenset()),
        lambda: QuestionKey(1, -1.0, False, frozenset({1}), frozenset({1})),
        lambda: QuestionKey(1, float("nan"), False, frozenset({1}), frozenset({1})),
        lambda: AnswerKey((Q1, Q1)),
        lambda: AnswerKey((Q1, QuestionKey(9, 1.0, False, frozenset({11}), frozenset({11})))),
        lambda: AnswerKey((Q1,), negative_fraction=1.5),
        lambda: AnswerKey((Q1,), unanswered_mark=-1),
    ],
)
def test_inconsistent_keys_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidKeyError):
        build()
    assert issubclass(InvalidKeyError, ValueError)  # so callers may catch ValueError


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        AnswerKey((Q1,), scheme="bogus")  # type: ignore[arg-type]


def test_key_accepts_plain_sets_and_scheme_names() -> None:
    # What ORM rows give (sets, lists, Decimal-ish numbers, str enums) is coerced, so keys
    # built either way compare and hash alike.
    q = QuestionKey(1, Decimal("2"), False, {1, 2}, [1], scheme="negative")  # type: ignore[arg-type]
    expected = QuestionKey(1, 2.0, False, frozenset({1, 2}), frozenset({1}), Scheme.NEGATIVE)
    assert q == expected
    assert hash(q) == hash(expected)
    assert AnswerKey([q], "negative") == AnswerKey((expected,), Scheme.NEGATIVE)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- key changes


def test_key_changes_scores() -> None:
    base = make_key(Scheme.PARTIAL)
    same = AnswerKey((Q3, Q2, Q1), scheme=Scheme.PARTIAL)  # reordered
    assert not key_changes_scores(base, base)
    assert not key_changes_scores(base, same)
    # Penalty fraction is irrelevant without negative marking.
    assert not key_changes_scores(base, make_key(Scheme.PARTIAL, negative_fraction=0.5))

    other_correct = QuestionKey(1, 2.0, False, Q1.options, frozenset({12}))
    assert key_changes_scores(base, AnswerKey((other_correct, Q2, Q3), scheme=Scheme.PARTIAL))
    more_points = QuestionKey(3, 1.5, True, Q3.options, Q3.correct)
    assert key_changes_scores(base, AnswerKey((Q1, Q2, more_points), scheme=Scheme.PARTIAL))
    assert key_changes_scores(base, make_key(Scheme.ALL_OR_NOTHING))
    assert key_changes_scores(base, make_key(Scheme.PARTIAL, unanswered_mark=0.5))
    assert key_changes_scores(base, AnswerKey((Q1, Q2), scheme=Scheme.PARTIAL))  # dropped Q3

    neg = make_key(Scheme.NEGATIVE)
    assert key_changes_scores(neg, make_key(Scheme.NEGATIVE, negative_fraction=0.5))


def test_option_count_matters_only_under_partial_credit() -> None:
    extra = QuestionKey(2, 3.0, True, Q2.options | {26}, Q2.correct)  # n_wrong 3 -> 4
    for scheme, changes in [
        (Scheme.ALL_OR_NOTHING, False),
        (Scheme.NEGATIVE, False),
        (Scheme.PARTIAL, True),  # a wrong option now costs 1/4 instead of 1/3
    ]:
        assert key_changes_scores(make_key(scheme), AnswerKey((Q1, extra, Q3), scheme)) == changes


def test_multiple_flag_matters_only_under_partial_credit() -> None:
    as_multiple = QuestionKey(1, 2.0, True, Q1.options, Q1.correct)
    for scheme, changes in [
        (Scheme.ALL_OR_NOTHING, False),
        (Scheme.NEGATIVE, False),
        (Scheme.PARTIAL, True),  # {11, 12} would now earn 1 - 1/3 of the points
    ]:
        new = AnswerKey((as_multiple, Q2, Q3), scheme)
        assert key_changes_scores(make_key(scheme), new) == changes


# --------------------------------------------------------------------------- properties


@st.composite
def keys_and_answers(draw: st.DrawFn) -> tuple[AnswerKey, dict[int, frozenset[int]]]:
    questions = []
    answers: dict[int, frozenset[int]] = {}
    for qid in range(1, draw(st.integers(1, 6)) + 1):
        options = list(range(qid * 10, qid * 10 + draw(st.integers(1, 6))))
        multiple = draw(st.booleans())
        if multiple:
            correct = draw(st.sets(st.sampled_from(options), min_size=1))
        else:
            correct = {draw(st.sampled_from(options))}
        points = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.25]))
        override = draw(st.none() | st.sampled_from(list(Scheme)))
        questions.append(
            QuestionKey(qid, points, multiple, frozenset(options), frozenset(correct), override)
        )
        if draw(st.booleans()):
            max_size = len(options) if multiple else 1
            answers[qid] = frozenset(draw(st.sets(st.sampled_from(options), max_size=max_size)))
    key = AnswerKey(
        tuple(questions),
        scheme=draw(st.sampled_from(list(Scheme))),
        negative_fraction=draw(st.sampled_from([0.0, 0.25, 1 / 3, 1.0])),
        unanswered_mark=draw(st.sampled_from([0.0, 0.25, 1.0])),
    )
    return key, answers


@given(keys_and_answers())
def test_score_invariants(case: tuple[AnswerKey, dict[int, frozenset[int]]]) -> None:
    key, answers = case
    r = score(key, answers)
    assert 0 <= r.score <= r.max_score
    assert 0 <= r.percentage <= 100
    assert r.score == max(0.0, round(sum(q.points for q in r.questions), 4))
    for q, question in zip(r.questions, key.questions, strict=True):
        scheme = question.scheme or key.scheme
        floor = -key.negative_fraction * question.points if scheme is Scheme.NEGATIVE else 0.0
        assert round(floor, 4) <= q.points <= q.max_points
        assert q.answered == bool(answers.get(q.question_id))
        if q.correctness is Correctness.CORRECT:
            assert q.points == q.max_points
            assert answers[q.question_id] == question.correct
        if q.correctness is Correctness.PARTIAL:
            assert scheme is Scheme.PARTIAL
            assert question.multiple


@given(keys_and_answers())
def test_all_correct_scores_the_maximum(case: tuple[AnswerKey, dict[int, frozenset[int]]]) -> None:
    key, _ = case
    r = score(key, {q.id: q.correct for q in key.questions})
    assert r.score == r.max_score
    assert {q.correctness for q in r.questions} <= {Correctness.CORRECT}


@given(keys_and_answers())
def test_json_round_trip(case: tuple[AnswerKey, dict[int, frozenset[int]]]) -> None:
    key, answers = case
    single = {q.id for q in key.questions if not q.multiple}
    raw = {
        str(qid): next(iter(chosen)) if qid in single and chosen else sorted(chosen, reverse=True)
        for qid, chosen in answers.items()
    }
    parsed = validate_answers(key, json.loads(json.dumps(raw)))
    assert parsed == answers
    assert score(key, parsed) == score(key, answers)


@given(keys_and_answers(), st.data())
def test_partial_credit_is_monotonic(
    case: tuple[AnswerKey, dict[int, frozenset[int]]], data: st.DataObject
) -> None:
    # Under partial credit, adding a correct option never lowers a question's points and
    # adding a wrong one never raises them.
    key, answers = case
    key = AnswerKey(key.questions, Scheme.PARTIAL, key.negative_fraction, key.unanswered_mark)
    candidates = [q for q in key.questions if q.multiple and q.scheme is None]
    assume(candidates)
    q = data.draw(st.sampled_from(candidates))
    position = key.questions.index(q)
    # Start from an answered state: unanswered -> answered promises no order.
    chosen = answers.get(q.id) or frozenset({data.draw(st.sampled_from(sorted(q.options)))})
    before = score(key, {q.id: chosen}).questions[position].points
    for extra in q.options - chosen:
        after = score(key, {q.id: chosen | {extra}}).questions[position].points
        assert after >= before if extra in q.correct else after <= before


# --------------------------------------------------------------------------- stored answers

# What a stored answer value can be, odd ones included: ids of the key's options, of no option,
# floats and bools that hash like ids, duplicates, nested junk.
_ids = st.integers(9, 45)  # mostly the options of keys_and_answers' questions 1-4
_odd = st.none() | st.booleans() | st.sampled_from([11.0, 21.0, "11", -1]) | st.just([[11]])
_values = _ids | _odd | st.lists(_ids | _odd, max_size=3) | st.lists(_ids, max_size=3)
_question_keys = st.sampled_from(["1", "2", "3", "4", "01", "-1", " 2", "x"]) | st.integers(0, 4)


def _full_path(key: AnswerKey, stored: object) -> ScoreResult | str:
    try:
        return score(key, normalize_answers(stored))  # type: ignore[arg-type]
    except (AnswerValidationError, TypeError, AttributeError) as exc:
        return type(exc).__name__


def _batch_path(scorer: Scorer, text: str) -> ScoreResult | str:
    try:
        return scorer.score_json(text)
    except (AnswerValidationError, TypeError, AttributeError) as exc:
        return type(exc).__name__


@given(
    keys_and_answers(),
    st.lists(st.dictionaries(_question_keys, _values, max_size=4), min_size=1, max_size=4),
)
def test_scorer_gives_what_score_gives(
    case: tuple[AnswerKey, dict[int, frozenset[int]]], batch: list[dict[object, object]]
) -> None:
    # The batch path remembers each question's results between submissions: the same scorer
    # must give every submission exactly what the plain path gives, whatever it saw before.
    key, answers = case
    single = {q.id for q in key.questions if not q.multiple}
    valid = {
        str(qid): next(iter(chosen)) if qid in single and chosen else sorted(chosen)
        for qid, chosen in answers.items()
    }
    scorer = Scorer(key)
    for stored in [valid, *batch, valid, *reversed(batch)]:
        text = json.dumps(stored)  # int keys become strings, as in the database
        assert _batch_path(scorer, text) == _full_path(key, orjson.loads(text))
    assert _batch_path(scorer, "[1, 2]") == _full_path(key, [1, 2])


def test_scorer_does_not_take_lookalike_ids() -> None:
    key = make_key(Scheme.PARTIAL)
    scorer = Scorer(key)
    # Learn the answers first, then present values that compare equal to them: 1.0 and true
    # are never taken for 1.
    assert scorer.score_json('{"1": 11, "2": [21, 22]}').score == 5.0
    for text in ('{"2": [21.0, 22]}', '{"2": [2.1e1, 22]}', '{"1": true}', '{"1": 11.0}'):
        with pytest.raises(AnswerValidationError, match="not an integer id"):
            scorer.score_json(text)
    # A stale answer (an option the key no longer has) is scored as a wrong choice, not refused:
    # hits 2/2, misses 1/3 -> (1 - 1/3) * 3 points; the same once learnt.
    for _ in range(2):
        assert outcome(scorer.score_json('{"2": [21, 22, 99]}'))[1] == (2.0, P)
    with pytest.raises(AnswerValidationError, match="option 21 repeated"):
        scorer.score_json('{"2": [21, 21]}')
