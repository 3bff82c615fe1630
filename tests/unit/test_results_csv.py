"""CSV export rows and import parsing (pure), and the stored forms of answers and details."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.grading import (
    AnswerKey,
    Correctness,
    DetailsEncoder,
    QuestionKey,
    QuestionResult,
    Scheme,
    ScoreResult,
    chosen_lists,
    details_json,
    normalize_answers,
    score,
    stored_answers,
    stored_details,
    validate_answers,
)
from common.results_csv import (
    HeaderError,
    ImportParser,
    ImportRow,
    RowError,
    export_header,
    export_row,
    rows_to_csv,
)

# Q1: single, options 11-13, correct 11. Q2: multiple, options 21-24, correct {21, 22}.
KEY = AnswerKey(
    (
        QuestionKey(1, 2.0, False, frozenset({11, 12, 13}), frozenset({11})),
        QuestionKey(2, 3.0, True, frozenset({21, 22, 23, 24}), frozenset({21, 22})),
    )
)


def parse(text: str) -> list[ImportRow | RowError]:
    return list(ImportParser(text, KEY).rows())


def test_export_rows_and_header():
    assert export_header([1, 2]) == ["username", "attempt", "score", "max_score", "submitted_at",
                                     "1", "2"]  # fmt: skip
    row = export_row(
        username="ann",
        attempt=2,
        score=4.5,
        max_score=5.0,
        submitted_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        answers={"1": [11], "2": [22, 21], "9": [99]},
        question_ids=[1, 2],
    )
    assert row == ["ann", "2", "4.5", "5.0", "2030-01-02T03:04:05+00:00", "11", "21|22"]
    assert rows_to_csv([row]) == "ann,2,4.5,5.0,2030-01-02T03:04:05+00:00,11,21|22\r\n"


def test_import_parses_rows_with_line_numbers():
    text = 'username,attempt,score,2,1\nann,,6.0,21|22,11\n\n"bob",3,,,12\n'
    rows = parse(text)
    assert rows == [
        ImportRow(2, "ann", None, {2: frozenset({21, 22}), 1: frozenset({11})}),
        ImportRow(4, "bob", 3, {1: frozenset({12})}),
    ]


def test_a_quoted_newline_keeps_line_numbers_right():
    rows = parse('username,1\n"a\nb",11\nbad,x\n')
    assert rows[0] == ImportRow(2, "a\nb", None, {1: frozenset({11})})  # lines 2-3
    assert rows[1] == RowError(4, "bad_cell", "question 1: 'x' is not an option id", "bad")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("ann,12|13", "single_answer"),
        ("ann,21", "foreign_option"),
        ("ann,99", "unknown_option"),
        ("ann,11|11", "single_answer"),
        ("ann,011", "bad_cell"),
        ("ann,-1", "bad_cell"),
        ("ann,1.0", "bad_cell"),
        (",11", "missing_username"),
        ("ann", "wrong_cell_count"),
        ("ann,11,12", "wrong_cell_count"),
        ("x" * 65 + ",11", "unknown_user"),
    ],
)
def test_bad_rows_are_reported_not_raised(line, code):
    (row,) = parse(f"username,1\n{line}\n")
    assert isinstance(row, RowError) and row.code == code and row.line == 2 and row.reason


def test_bad_attempt_cells():
    for cell in ("0", "x", "10001", "1.5"):
        (row,) = parse(f"username,attempt,1\nann,{cell},11\n")
        assert isinstance(row, RowError) and row.code == "bad_attempt"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("user,1\n", "username"),
        ("username,3\n", "not a question of this test"),
        ("username,abc\n", "not a question id"),
        ("username,1,1\n", "duplicate"),
        ("username,Username,1\n", "duplicate"),
        ("username,attempt\n", "no question columns"),
        ('username,"1\n', "bad header"),
    ],
)
def test_header_errors_reject_the_file(text, needle):
    with pytest.raises(HeaderError) as info:
        ImportParser(text, KEY)
    assert needle in str(info.value) or needle in str(info.value.details)


def test_unterminated_quote_is_one_bad_row():
    rows = parse('username,1\nann,11\nbob,"11\n')
    assert rows[0] == ImportRow(2, "ann", None, {1: frozenset({11})})
    assert isinstance(rows[1], RowError) and rows[1].code == "malformed_csv"


def test_stored_forms_round_trip():
    answers = validate_answers(KEY, {"1": 11, "2": [22, 21]})
    stored = stored_answers(answers, KEY)
    assert stored == {"1": 11, "2": [21, 22]}
    assert normalize_answers(stored) == answers
    assert chosen_lists(stored) == {"1": [11], "2": [21, 22]}
    # Stale answers (an option no longer in the key) are read leniently; score counts it wrong.
    assert normalize_answers({"1": 99}) == {1: frozenset({99})}
    result = score(KEY, answers)
    assert stored_details(result) == [[1, 2.0, 2.0, "c"], [2, 3.0, 3.0, "c"]]
    assert details_json(result) == '[[1,2.0,2.0,"c"],[2,3.0,3.0,"c"]]'
    encoder = DetailsEncoder(KEY)
    for raw in ({"1": 12}, {"2": [21]}, {}, {"1": 11, "2": [21, 22, 23]}, {"1": 99}):
        result = score(KEY, normalize_answers(raw))
        assert encoder.encode(result) == details_json(result)
    # Every result the key can give, partial credit included; and one built by hand.
    partial = AnswerKey(KEY.questions, scheme=Scheme.PARTIAL, negative_fraction=0.5)
    encoder = DetailsEncoder(partial)
    for q in partial.results:
        result = ScoreResult(0.0, partial.max_score, 0.0, (q,))
        assert encoder.encode(result) == details_json(result)
    by_hand = QuestionResult(7, 0.5, 1.0, True, Correctness.PARTIAL)
    result = ScoreResult(0.5, 1.0, 50.0, (by_hand,))
    assert encoder.encode(result) == details_json(result) == '[[7,0.5,1.0,"p"]]'
