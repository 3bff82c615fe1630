"""The Celery worker application.

Start one worker for both queues in development (`make run`), one per queue in production:
    celery -A worker.app worker -Q default -c 4
    celery -A worker.app worker -Q biometrics -c 1 --prefetch-multiplier 1
"""

from __future__ import annotations

from typing import Any

from celery import signals

from common.celery_config import make_celery
from common.logging import configure_logging
from common.settings import get_settings
from worker import runtime

settings = get_settings()
app = make_celery(settings, main="mcq-worker")
app.conf.include = ["worker.tasks.diagnostics"]


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings, process="worker")


@signals.worker_process_init.connect
def _init_child(**_: Any) -> None:
    # Each prefork child gets its own engine: sockets inherited across fork are shared state.
    runtime.init_db()
