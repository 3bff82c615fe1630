"""The Celery worker application.

Start one worker for both queues in development (`make run`), one per queue in production:
    celery -A worker.app worker -Q default -c 4
    celery -A worker.app worker -Q biometrics -c 1 --prefetch-multiplier 1
"""

from __future__ import annotations

import sys
from typing import Any

from celery import signals

from common.celery_config import BIOMETRICS_QUEUE, make_celery
from common.logging import configure_logging
from common.settings import get_settings
from worker import runtime

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


@signals.worker_process_init.connect
def _init_child(**_: Any) -> None:
    # Each prefork child gets its own engine: sockets inherited across fork are shared state.
    runtime.init_db()
    if _consumes_biometrics:
        # Load dlib's models (~0.5 s, ~100 MB) before the first face job, and only in workers
        # that take face jobs; elsewhere (solo pool, tests) they load on first use.
        from worker.face_pipeline import preload

        preload()
