"""The Celery worker application.

Start one worker for both queues in development (`make run`), one per queue in production:
    celery -A worker.app worker -Q default -c 4
    celery -A worker.app worker -Q biometrics -c 1 --prefetch-multiplier 1
"""

from __future__ import annotations

import sys
from typing import Any

import structlog
from billiard.exceptions import TimeLimitExceeded
from celery import signals

from common.celery_config import BIOMETRICS_QUEUE, make_celery
from common.logging import configure_logging
from common.settings import get_settings
from worker import runtime

log = structlog.get_logger(__name__)
settings = get_settings()
app = make_celery(settings, main="mcq-worker")
app.conf.include = [
    "worker.tasks.diagnostics",
    "worker.tasks.files",
    "worker.tasks.faces",
    "worker.tasks.grading",
]


@signals.worker_init.connect
def _refuse_to_start_unready(**_: Any) -> None:
    # SystemExit, not an exception: Celery logs and ignores exceptions raised by receivers.
    problems = settings.production_problems("worker")
    if problems:
        for problem in problems:
            print(f"worker refuses to start: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings, process="worker")


_consumes_biometrics = False


@signals.celeryd_after_setup.connect
def _note_queues(instance: Any = None, **_: Any) -> None:
    # In the main process, before the children fork: they inherit the flag.
    global _consumes_biometrics
    queues = set(instance.app.amqp.queues.consume_from) if instance is not None else set()
    _consumes_biometrics = BIOMETRICS_QUEUE in queues


_reaper: Any = None


@signals.worker_ready.connect
def _start_reaper(**_: Any) -> None:
    # In the main process, once the pool has forked: every worker reaps lost jobs (see
    # common.job_leases), so no beat process is needed and a fresh worker reaps as it starts.
    global _reaper
    from worker.leases import Reaper

    _reaper = Reaper(app, settings)
    _reaper.start()


@signals.task_failure.connect
def _hard_time_limit(task_id: str | None = None, exception: Any = None, **_: Any) -> None:
    # Sent in the main process when the pool kills a child at its hard time limit.
    if _reaper is not None and task_id and isinstance(exception, TimeLimitExceeded):
        try:
            _reaper.fail_timed_out(task_id)
        except Exception as exc:  # the lease expires instead: the job runs again
            log.warning("job.timeout_not_recorded", job_id=task_id, error=repr(exc))


@signals.worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stop()


@signals.worker_process_init.connect
def _init_child(**_: Any) -> None:
    # Each prefork child gets its own engine: sockets inherited across fork are shared state.
    runtime.init_db()
    if _consumes_biometrics:
        # Load dlib's models (~0.5 s, ~100 MB) before the first face job, and only in workers
        # that take face jobs; elsewhere (solo pool, tests) they load on first use.
        from worker.face_pipeline import preload

        preload()
