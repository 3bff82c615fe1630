"""The invalidation rules (common.cache_invalidation) on a real PostgreSQL, for the write shapes
no route uses today: each write is made through a session carrying the hooks, and the scopes
bumped after its commit are the ones the rules promise (the HTTP paths: tests/api/test_cache.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, update

from common import cache as keys
from common.cache_invalidation import session_info
from common.db import SyncDatabase
from common.grading.cache_scopes import grades_scope
from common.models import Attempt, Exam, ExamClass, Option, Question, SchoolClass, Submission


@pytest.fixture
def hooked(settings, db):
    """A worker-style database whose commits report the scopes they bump."""
    bumped: list[frozenset[str]] = []
    database = SyncDatabase(settings, info=session_info(bumped.append))
    yield database, bumped
    database.dispose()


@pytest.fixture
def make_graded(db, instructor, student):
    """A test with one question, one option, one attempt and its submission."""
    return lambda: _graded(db, instructor, student)


@pytest.fixture
def graded(make_graded):
    return make_graded()


def _graded(db, instructor, student):
    test = Exam(owner_id=instructor.id, title="T")
    test.questions = [
        Question(position=0, text="Q", options=[Option(position=0, text="o", is_correct=False)])
    ]
    db.add(test)
    db.flush()
    attempt = Attempt(test_id=test.id, user_id=student.id, number=1,
                      started_at=datetime.now(UTC))  # fmt: skip
    db.add(attempt)
    db.flush()
    db.add(
        Submission(test_id=test.id, user_id=student.id, attempt_id=attempt.id, attempt=1,
                   answers={}, score=0, max_score=1, key_version=1, details=[], source="api",
                   graded_at=datetime.now(UTC))
    )  # fmt: skip
    db.commit()
    return test, attempt


def test_orm_bulk_update_by_primary_key(hooked, make_graded):
    database, bumped = hooked
    (test, _), _other = make_graded(), make_graded()
    with database.transaction() as session:
        sub_id = session.query(Submission.id).filter_by(test_id=test.id).scalar()
        session.execute(update(Submission), [{"id": sub_id, "score": 1.0}])
    assert bumped == [frozenset({grades_scope(test.id)})]


def test_deleting_an_attempt_takes_its_submission(hooked, graded):
    database, bumped = hooked
    test, attempt = graded
    with database.transaction() as session:
        session.execute(delete(Attempt).where(Attempt.id == attempt.id))
    assert bumped == [frozenset({grades_scope(test.id)})]


def test_an_orm_change_to_an_option_reaches_its_test(hooked, graded):
    database, bumped = hooked
    test, _ = graded
    with database.transaction() as session:
        option = session.query(Option).one()
        option.is_correct = True
    assert bumped == [frozenset({keys.test_scope(test.id), grades_scope(test.id)})]


def test_deleting_a_class_reaches_the_tests_assigned_to_it(hooked, graded, instructor, db):
    database, bumped = hooked
    test, _ = graded
    klass = SchoolClass(owner_id=instructor.id, name="C")
    db.add(klass)
    db.flush()
    db.add(ExamClass(test_id=test.id, class_id=klass.id))
    db.commit()
    with database.transaction() as session:
        session.delete(session.get(SchoolClass, klass.id))
    assert bumped == [frozenset({keys.LISTS, keys.test_scope(test.id)})]


def test_deleting_an_owner_reaches_their_tests(hooked, graded, instructor):
    database, bumped = hooked
    test, _ = graded
    from common.models import User

    with database.transaction() as session:
        session.execute(delete(User).where(User.id == instructor.id))
    assert bumped == [frozenset({keys.LISTS, keys.test_scope(test.id), grades_scope(test.id)})]


def test_a_rolled_back_write_bumps_nothing(hooked, graded):
    database, bumped = hooked
    test, _ = graded
    session = database.sessionmaker()
    session.execute(update(Exam).where(Exam.id == test.id).values(title="x"))
    session.rollback()
    session.close()
    with database.transaction() as session:
        session.execute(update(Attempt).values(number=1))  # no cached read depends on it
    assert bumped == []
