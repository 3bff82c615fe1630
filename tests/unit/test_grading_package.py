"""Grading is one package: the lock, the task names and the cache scopes that follow grades
have their one home in common.grading, and everything else asks it."""

from __future__ import annotations

import inspect

import orjson

import common.jobs
from common.cache_invalidation import RULES
from common.celery_config import TASK_QUEUES
from common.grading import AnswerKey, QuestionKey, Scorer, graded_row, score, validate_answers
from common.grading.cache_scopes import grades_scope, statistics_scopes
from common.grading.lock import GRADING_LOCK, IMPORT_TASK, REGRADE_TASK


def test_the_grading_lock_covers_the_grading_tasks_and_jobs_knows_nothing_of_grading() -> None:
    assert GRADING_LOCK.kinds == {REGRADE_TASK, IMPORT_TASK}
    assert GRADING_LOCK.kinds <= TASK_QUEUES.keys()
    assert not hasattr(common.jobs, "GRADING_LOCK")
    assert "grading." not in inspect.getsource(common.jobs)


def test_the_worker_registers_the_tasks_the_lock_names() -> None:
    import worker.tasks.grading  # noqa: F401 - registers the tasks
    from worker.app import app

    assert {REGRADE_TASK, IMPORT_TASK} <= set(app.tasks)


def test_writes_to_grading_inputs_make_the_statistics_stale() -> None:
    # Each rule that touches a grading input (a submission, an attempt, the key, the test's
    # settings) bumps the scope the statistics entry is keyed by.
    stats = set(statistics_scopes(7))
    assert grades_scope(7) in stats
    for table in ("submissions", "attempts", "tests", "questions"):
        bumped = RULES[table].scopes(None, [(7,)])  # type: ignore[arg-type]
        assert grades_scope(7) in bumped, table


def test_the_key_holds_no_scoring_state() -> None:
    # The memo of the batch path lives in the scorer: a key is a value, equal to a fresh one
    # after any amount of scoring, and has no attribute to carry state in.
    questions = [QuestionKey(1, 2.0, True, {11, 12, 13}, {11, 12})]
    key = AnswerKey(questions, "partial")
    scorer = Scorer(key)
    for text in ('{"1": [11]}', '{"1": [11, 13]}', '{"1": [11]}', "{}"):
        assert scorer.score_json(text) == score(key, validate_answers(key, orjson.loads(text)))
    assert key == AnswerKey(questions, "partial") and hash(key) == hash(
        AnswerKey(questions, "partial")
    )
    assert not hasattr(key, "__dict__")
    row = graded_row(key, validate_answers(key, {"1": [12, 11]}))
    assert row.answers == {"1": [11, 12]} and row.result.score == 2.0
    assert row.details_text == '[[1,2.0,2.0,"c"]]'
