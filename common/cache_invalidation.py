"""What invalidates which cache entry: the one place, applied by session hooks on every write.

The cached reads (api.services: a test's detail per audience, test lists, statistics) are keyed
by the versions of scopes (common.cache; the scopes that follow grades are named by
common.grading.cache_scopes). Each table they depend on maps its changed rows to the
scopes they make stale (`RULES`):

| table | a changed row makes stale |
| --- | --- |
| tests | the test, its grades (statistics), every test list |
| questions, options | their test and its grades (the key) |
| test_classes | the test (the owner view lists its classes), every list (who sees it) |
| classes, class_members | every list (membership decides which tests a student sees) |
| submissions; attempts (deleted) | the grades of their test |
| users (deleted) | what the deletion cascades to: their tests, the grades of the tests |
|                 | they submitted to, every list |

No writer calls this. Sessions created with `session_info(bumper)` (the API's and the worker's)
collect the scopes while they write and bump them after the commit, so the stale entry is gone
before the writer answers; a rollback drops them. Writes are seen whichever way they are made:

- ORM objects added, changed or deleted: `before_flush` (deletions: what they cascade to is read
  before the database removes it) and `after_flush` (new rows have their ids then);
- ORM-enabled bulk INSERT/UPDATE/DELETE statements: `do_orm_execute` reads the key columns of
  the rows an UPDATE/DELETE will touch (same WHERE) before it runs, and an INSERT's values;
- raw SQL on a DBAPI cursor (the regrade's COPY + UPDATE) cannot be seen: its writer says what
  it wrote with `rows_written`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, event, select, tuple_
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from common.cache import LISTS, test_scope
from common.grading.cache_scopes import stale_when_grades_change
from common.models import Exam, ExamClass, Question, Submission

log = structlog.get_logger(__name__)

BUMPER = "cache_bumper"
PENDING = "cache_scopes"


class Bumper(Protocol):
    """Bumps the versions of scopes after a commit; never raises (the cache fails open)."""

    def __call__(self, scopes: frozenset[str]) -> None: ...


def session_info(bumper: Bumper) -> dict[str, Any]:
    """The `info` of sessions whose writes invalidate the cache."""
    return {BUMPER: bumper}


Rows = Sequence[tuple[Any, ...]]


def _of_tests(conn: Connection, rows: Rows) -> set[str]:
    ids = {r[0] for r in rows}
    return {LISTS} | {test_scope(i) for i in ids} | stale_when_grades_change(ids)


def _of_questions(conn: Connection, rows: Rows) -> set[str]:
    ids = {r[0] for r in rows}
    return {test_scope(i) for i in ids} | stale_when_grades_change(ids)


def _of_options(conn: Connection, rows: Rows) -> set[str]:
    question_ids = sorted({r[0] for r in rows})
    tests = conn.execute(select(Question.test_id).where(Question.id.in_(question_ids))).all()
    return _of_questions(conn, tests)


def _of_test_classes(conn: Connection, rows: Rows) -> set[str]:
    return {LISTS} | {test_scope(r[0]) for r in rows}


def _of_classes(conn: Connection, rows: Rows) -> set[str]:
    # A deleted class takes its test assignments with it (ON DELETE CASCADE).
    ids = sorted({r[0] for r in rows})
    tests = conn.execute(select(ExamClass.test_id).where(ExamClass.class_id.in_(ids))).all()
    return _of_test_classes(conn, tests)


def _of_lists(conn: Connection, rows: Rows) -> set[str]:
    return {LISTS}


def _of_submissions(conn: Connection, rows: Rows) -> set[str]:
    return stale_when_grades_change(r[0] for r in rows)


def _of_deleted_users(conn: Connection, rows: Rows) -> set[str]:
    """Read before the delete: what ON DELETE CASCADE will take with the users."""
    ids = sorted({r[0] for r in rows})
    owned = conn.execute(select(Exam.id).where(Exam.owner_id.in_(ids))).all()
    submitted = conn.execute(
        select(Submission.test_id).where(Submission.user_id.in_(ids)).distinct()
    ).all()
    # Their classes and memberships go too: every list.
    return _of_tests(conn, owned) | _of_submissions(conn, submitted) | {LISTS}


@dataclass(frozen=True)
class Rule:
    columns: tuple[str, ...]  # the row's values the scopes derive from
    scopes: Callable[[Connection, Rows], set[str]]
    on: frozenset[str] = frozenset({"insert", "update", "delete"})


RULES: dict[str, Rule] = {
    "tests": Rule(("id",), _of_tests),
    "questions": Rule(("test_id",), _of_questions),
    "options": Rule(("question_id",), _of_options),
    "test_classes": Rule(("test_id",), _of_test_classes),
    "classes": Rule(("id",), _of_classes),
    "class_members": Rule((), _of_lists),
    "submissions": Rule(("test_id",), _of_submissions),
    # A deleted attempt takes its submission with it (ON DELETE CASCADE).
    "attempts": Rule(("test_id",), _of_submissions, frozenset({"delete"})),
    # A changed name, role or status is in no cached entry (lists are cached per user and role).
    "users": Rule(("id",), _of_deleted_users, frozenset({"delete"})),
}


def _pending(session: Session) -> set[str]:
    pending: set[str] = session.info.setdefault(PENDING, set())
    return pending


def _collect(session: Session, table: str, op: str, rows: Rows | None) -> None:
    rule = RULES.get(table)
    if rule is None or op not in rule.on:
        return
    if rows is None:
        # The rows could not be told (e.g. an INSERT ... SELECT): say so loudly; the entries
        # still expire within CACHE_TTL_SECONDS.
        log.warning("cache_invalidation.unknown_rows", table=table, op=op)
        return
    if rule.columns and not rows:
        return
    _pending(session).update(rule.scopes(session.connection(), rows))


def rows_written(session: Session, table: str, op: str, **key: Any) -> None:
    """For writes the hooks cannot see (raw SQL on a DBAPI cursor): `key` holds the rule's
    columns of the rows written, e.g. rows_written(s, "submissions", "update", test_id=7)."""
    if BUMPER in session.info:
        _collect(session, table, op, [tuple(key[c] for c in RULES[table].columns)])


# --------------------------------------------------------------------------- ORM objects


def _object_rows(session: Session, objects: Iterable[Any], op: str) -> None:
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for obj in objects:
        table = getattr(obj, "__tablename__", None)
        rule = RULES.get(table or "")
        if table is None or rule is None or op not in rule.on:
            continue
        by_table.setdefault(table, []).append(tuple(getattr(obj, c) for c in rule.columns))
    for table, rows in by_table.items():
        _collect(session, table, op, rows)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, flush: UOWTransaction, instances: Any) -> None:
    if BUMPER in session.info and session.deleted:
        _object_rows(session, session.deleted, "delete")


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, flush: UOWTransaction) -> None:
    if BUMPER not in session.info:
        return
    _object_rows(session, session.new, "insert")
    _object_rows(session, (o for o in session.dirty if session.is_modified(o)), "update")


# --------------------------------------------------------------------------- bulk statements


def _insert_rows(state: ORMExecuteState, columns: tuple[str, ...]) -> Rows | None:
    if not columns:
        return [()]
    params = state.parameters
    batches: list[Mapping[str, Any]] = (
        list(params) if isinstance(params, list) else [params or {}]  # type: ignore[list-item]
    )
    inline: dict[str, Any] | None = None
    rows = []
    for batch in batches:
        if not all(c in batch for c in columns):
            if inline is None:
                # .values(test_id=...) : the statement's own values (cheaper than compiling).
                values = getattr(state.statement, "_values", None) or {}
                inline = {
                    getattr(col, "key", col): getattr(val, "value", val)
                    for col, val in values.items()
                }
            batch = {**inline, **batch}
            if not all(c in batch for c in columns):
                return None
        rows.append(tuple(batch[c] for c in columns))
    return rows


@event.listens_for(Session, "do_orm_execute")
def _do_orm_execute(state: ORMExecuteState) -> None:
    session = state.session
    if BUMPER not in session.info:
        return
    if state.is_insert:
        op = "insert"
    elif state.is_update:
        op = "update"
    elif state.is_delete:
        op = "delete"
    else:
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    rule = RULES.get(table or "")
    if table is None or rule is None or op not in rule.on:
        return
    if op == "insert":
        _collect(session, table, op, _insert_rows(state, rule.columns))
        return
    if not rule.columns:
        _collect(session, table, op, [()])
        return
    # UPDATE/DELETE: the rows it is about to touch, read with its own WHERE before it runs.
    target = state.statement.table  # type: ignore[attr-defined]
    query = select(*(target.c[c] for c in rule.columns)).distinct()
    where = state.statement.whereclause  # type: ignore[attr-defined]
    if where is not None:
        query = query.where(where)
    if isinstance(state.parameters, list):  # ORM bulk UPDATE by primary key: those rows only
        pk = list(target.primary_key.columns)
        query = query.where(
            tuple_(*pk).in_([tuple(p[c.key] for c in pk) for p in state.parameters])
        )
    _collect(session, table, op, session.connection().execute(query).all())


# --------------------------------------------------------------------------- transaction end


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    scopes = session.info.pop(PENDING, None)
    bumper = session.info.get(BUMPER)
    if scopes and bumper is not None:
        bumper(frozenset(scopes))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)
