"""Results as CSV: the export's rows, and the parsing of an uploaded import. Pure, no I/O.

Export: `username,attempt,score,max_score,submitted_at,<question id>,...`, one row per
submission; a question's cell holds the chosen option ids separated by `|` (empty: unanswered).

Import: a `username` column, then one column per question id with the same cells. An `attempt`
column is optional (given: that attempt's submission is created or replaced; absent or empty:
the student's next attempt). The export's other columns are ignored, so an export imports back
as it is. Header problems reject the whole file; a bad row is reported with its line number and
reason, and never stops the rows after it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.grading import AnswerKey, Answers, AnswerValidationError, validate_answers

__all__ = [
    "EXPORT_COLUMNS",
    "HeaderError",
    "ImportParser",
    "ImportRow",
    "RowError",
    "export_header",
    "export_row",
    "rows_to_csv",
]

EXPORT_COLUMNS = ("username", "attempt", "score", "max_score", "submitted_at")
IGNORED_COLUMNS = frozenset({"score", "max_score", "percentage", "submitted_at", "user_id"})
SEPARATOR = "|"
MAX_COLUMNS = 2000
MAX_USERNAME = 64
MAX_ATTEMPT = 10_000
MAX_CELL = 2000
MAX_ID = 2_147_483_647


# --------------------------------------------------------------------------- export


def export_header(question_ids: Sequence[int]) -> list[str]:
    return [*EXPORT_COLUMNS, *(str(qid) for qid in question_ids)]


def _number(value: float) -> str:
    return repr(float(value))


def export_row(
    *,
    username: str,
    attempt: int,
    score: float,
    max_score: float,
    submitted_at: datetime,
    answers: Mapping[str, Sequence[int]],
    question_ids: Sequence[int],
) -> list[str]:
    cells = [username, str(attempt), _number(score), _number(max_score), submitted_at.isoformat()]
    for qid in question_ids:
        chosen = answers.get(str(qid)) or ()
        cells.append(SEPARATOR.join(str(option) for option in sorted(chosen)))
    return cells


def rows_to_csv(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


# --------------------------------------------------------------------------- import


class HeaderError(ValueError):
    """The file as a whole cannot be imported (no username column, unknown question...)."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    username: str
    attempt: int | None
    answers: Answers  # validated against the key


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    code: str
    reason: str
    username: str | None = None


def _canonical_int(text: str) -> int | None:
    if text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
        value = int(text)
        return value if value <= MAX_ID else None
    return None


@dataclass
class _Header:
    username: int
    attempt: int | None
    questions: list[tuple[int, int]] = field(default_factory=list)  # (column, question id)
    width: int = 0


def _parse_header(cells: list[str], key: AnswerKey) -> _Header:
    if len(cells) > MAX_COLUMNS:
        raise HeaderError(f"the header has {len(cells)} columns; at most {MAX_COLUMNS}")
    known = {q.id for q in key.questions}
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    username = attempt = None
    questions: list[tuple[int, int]] = []
    for index, raw in enumerate(cells):
        name = raw.strip()
        column = index + 1
        lowered = name.lower()
        if lowered in seen:
            problems.append({"column": column, "name": name, "message": "duplicate column"})
            continue
        seen[lowered] = column
        if lowered == "username":
            username = index
        elif lowered == "attempt":
            attempt = index
        elif lowered in IGNORED_COLUMNS:
            continue
        else:
            qid = _canonical_int(name)
            if qid is None:
                problems.append(
                    {"column": column, "name": name[:100], "message": "not a question id"}
                )
            elif qid not in known:
                problems.append(
                    {"column": column, "name": name, "message": "not a question of this test"}
                )
            else:
                questions.append((index, qid))
    if username is None:
        problems.insert(0, {"column": None, "name": "username", "message": "column missing"})
    if not questions and not problems:
        problems.append({"column": None, "name": None, "message": "no question columns"})
    if problems:
        first = problems[0]
        where = f"column {first['column']} ({first['name']})" if first["column"] else "header"
        raise HeaderError(f"bad header: {where}: {first['message']}", problems)
    assert username is not None
    return _Header(username=username, attempt=attempt, questions=questions, width=len(cells))


def _explain(error: AnswerValidationError) -> str:
    parts = []
    for e in error.errors:
        # e.path is "answers.<question id>[.<index>]"
        pieces = e.path.split(".")
        where = f"question {pieces[1]}" if len(pieces) > 1 else "answers"
        parts.append(f"{where}: {e.message}")
    return "; ".join(parts)


class ImportParser:
    """Parse an uploaded CSV against a test's key.

    The constructor checks the header (HeaderError); `rows()` then yields an ImportRow or a
    RowError per non-blank record, with the line the record starts on (the header is line 1).
    """

    def __init__(self, text: str, key: AnswerKey) -> None:
        self.key = key
        self._lines = io.StringIO(text, newline="")
        self._reader = csv.reader(self._lines, strict=True)
        try:
            header = next(self._reader, None)
        except csv.Error as exc:
            raise HeaderError(f"bad header: {exc}") from exc
        if header is None or not any(cell.strip() for cell in header):
            raise HeaderError("the file is empty or its first line is blank")
        self.header = _parse_header(header, key)
        self.question_ids = [qid for _, qid in self.header.questions]
        self._multiple = {q.id: q.multiple for q in key.questions}

    def rows(self) -> Iterator[ImportRow | RowError]:
        reader = self._reader
        previous = reader.line_num
        while True:
            line = previous + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                previous = reader.line_num
                yield RowError(line, "malformed_csv", f"unreadable CSV: {exc}")
                if previous < line:  # the reader cannot move on: stop rather than loop
                    return
                continue
            previous = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            yield self._row(line, record)

    def _row(self, line: int, record: list[str]) -> ImportRow | RowError:
        header = self.header
        if len(record) != header.width:
            return RowError(
                line, "wrong_cell_count", f"expected {header.width} cells, found {len(record)}"
            )
        username = record[header.username].strip()
        if not username:
            return RowError(line, "missing_username", "the username is empty")
        if len(username) > MAX_USERNAME:
            return RowError(line, "unknown_user", "no such user (username too long)")
        attempt: int | None = None
        if header.attempt is not None and (cell := record[header.attempt].strip()):
            attempt = _canonical_int(cell)
            if attempt is None or not 1 <= attempt <= MAX_ATTEMPT:
                return RowError(
                    line,
                    "bad_attempt",
                    f"attempt must be a whole number from 1 to {MAX_ATTEMPT}",
                    username,
                )
        raw: dict[int, object] = {}
        for column, qid in header.questions:
            cell = record[column]
            if len(cell) > MAX_CELL:
                return RowError(line, "bad_cell", f"question {qid}: cell too long", username)
            tokens = [t.strip() for t in cell.split(SEPARATOR)] if cell.strip() else []
            options: list[int] = []
            for token in tokens:
                option = _canonical_int(token)
                if option is None:
                    shown = token[:40]
                    return RowError(
                        line,
                        "bad_cell",
                        f"question {qid}: {shown!r} is not an option id",
                        username,
                    )
                options.append(option)
            if not options:
                continue
            single = len(options) == 1 and not self._multiple[qid]
            raw[qid] = options[0] if single else options
        try:
            answers = validate_answers(self.key, raw)
        except AnswerValidationError as exc:
            return RowError(line, exc.errors[0].code, _explain(exc), username)
        return ImportRow(line, username, attempt, answers)
