"""Bulk grading tasks: regrade every submission of a test, and import submissions from CSV.

Both score through `common.grading` on the key built by `common.grading.answer_key`, exactly as
the API does on submit, and write everything in the job's final transaction (`ctx.finish`), so
a crash or a redelivery never leaves half a regrade or half an import behind. The engines are
worker.regrade_engine (forked shards, COPY) and worker.submission_import; the tasks here only
adapt them to a job: load the key, run, check the key did not change, write, report.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from common.grading import AnswerKey, answer_key
from common.grading.lock import IMPORT_TASK, REGRADE_TASK
from common.models import Exam, Question, SubmissionImport
from common.results_csv import HeaderError
from common.settings import get_settings
from worker.app import app
from worker.jobs import JobCanceled, JobContext, JobFailed, run_job
from worker.regrade_engine import scored_regrade
from worker.runtime import db
from worker.submission_import import check_import, write_import

log = structlog.get_logger(__name__)
settings = get_settings()

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "soft_time_limit": settings.grading_task_soft_time_limit,
    "time_limit": settings.grading_task_time_limit,
}


def _load_key(session: Session, test_id: int) -> tuple[Exam, AnswerKey]:
    test = session.execute(select(Exam).where(Exam.id == test_id)).scalar_one_or_none()
    if test is None:
        raise JobFailed("test_not_found", "The test no longer exists.")
    questions = session.scalars(
        select(Question)
        .where(Question.test_id == test_id)
        .options(selectinload(Question.options))
        .order_by(Question.position, Question.id)
    ).all()
    return test, answer_key(test, questions)


def _lock_same_key(session: Session, test_id: int, key_version: int) -> None:
    """In the final transaction: the test still exists and its key is the one we used."""
    current = session.execute(
        select(Exam.key_version).where(Exam.id == test_id).with_for_update()
    ).scalar_one_or_none()
    if current is None:
        raise JobFailed("test_not_found", "The test was deleted while the job ran.")
    if current != key_version:
        raise JobFailed("key_changed", "The test's key changed while the job ran; start it again.")


# --------------------------------------------------------------------------- regrade


def _regrade(ctx: JobContext) -> None:
    test_id, dry_run = int(ctx.params["test_id"]), bool(ctx.params.get("dry_run", False))
    with db().transaction() as session:
        test, key = _load_key(session, test_id)
        key_version = test.key_version
    with scored_regrade(db(), test_id, key, ctx.progress) as run, ctx.finish() as session:
        if not dry_run:
            _lock_same_key(session, test_id, key_version)
            run.write(session, key_version)
        summary = run.summary
        ctx.set_result(
            {
                "graded": summary.changed + summary.unchanged,
                "changed": summary.changed,
                "unchanged": summary.unchanged,
                "failed": summary.failed,
                "dry_run": dry_run,
                "key_version": key_version,
                "errors": summary.errors,
                "processes": summary.processes,
                "seconds": summary.seconds,
            }
        )
    log.info("regrade.done", test_id=test_id, changed=summary.changed, failed=summary.failed)


@app.task(name=REGRADE_TASK, **TASK_OPTIONS)
def regrade(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _regrade)


# --------------------------------------------------------------------------- import


def _drop_import(import_id: int) -> None:
    with db().transaction() as session:
        session.execute(delete(SubmissionImport).where(SubmissionImport.id == import_id))


def _import(ctx: JobContext) -> None:
    import_id, test_id = int(ctx.params["import_id"]), int(ctx.params["test_id"])
    try:
        with db().transaction() as session:
            pending = session.get(SubmissionImport, import_id)
            if pending is None:
                raise JobFailed("import_not_found", "The uploaded file is gone.")
            text = pending.content
            test, key = _load_key(session, test_id)
        try:
            checked = check_import(db(), test_id, text, key, ctx.progress)
        except HeaderError as exc:
            raise JobFailed("invalid_csv", exc.message) from exc
        del text
        with ctx.finish() as session:
            _lock_same_key(session, test_id, test.key_version)
            ctx.set_result(
                write_import(
                    session,
                    checked,
                    key_version=test.key_version,
                    attempts_allowed=test.attempts_allowed,
                )
            )
            session.execute(delete(SubmissionImport).where(SubmissionImport.id == import_id))
    except (JobFailed, JobCanceled):
        _drop_import(import_id)  # nothing was imported; do not keep the upload
        raise


@app.task(name=IMPORT_TASK, **TASK_OPTIONS)
def import_submissions(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _import)
