"""The Celery application's configuration, shared by the API (which only publishes, by task
name) and the worker (which registers the tasks). Nothing here imports worker code.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from common.settings import Settings

DEFAULT_QUEUE = "default"
BIOMETRICS_QUEUE = "biometrics"

# Task names are part of the contract between API and worker: keep them stable.
TASK_QUEUES: dict[str, str] = {
    "diagnostics.echo": DEFAULT_QUEUE,
    "grading.regrade": DEFAULT_QUEUE,
    "grading.import_submissions": DEFAULT_QUEUE,
    "files.scan": DEFAULT_QUEUE,
    "faces.enroll": BIOMETRICS_QUEUE,
    "faces.check_in": BIOMETRICS_QUEUE,
    "faces.class_photo": BIOMETRICS_QUEUE,
}


def celery_redis_url(redis_url: str) -> str:
    """kombu spells a unix socket `redis+socket://`; redis-py spells it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


def celery_config(settings: Settings) -> dict[str, Any]:
    url = celery_redis_url(settings.redis_url)
    default_q, bio_q = DEFAULT_QUEUE, BIOMETRICS_QUEUE
    transport = {
        # Longer than the longest hard time limit, or Redis hands a running task to another
        # worker. The same value for broker and result backend keeps them consistent.
        "visibility_timeout": settings.broker_visibility_timeout,
        # How often a worker restores a dead worker's unacked messages once the visibility
        # timeout expired (kombu's default sweep is every ~100 s). Job leases, not this, bring
        # a lost job back within a minute (common.job_leases); the restored message then
        # finds its job running or finished and does nothing.
        "unacked_restore_interval": max(1, min(10, settings.broker_visibility_timeout // 4)),
        "unacked_restore_throttle": 1 if settings.broker_visibility_timeout < 600 else 10,
        "socket_connect_timeout": settings.broker_connect_timeout,
        "socket_timeout": 10,
        # Lets several deployments (or parallel test sessions) share one Redis.
        "global_keyprefix": settings.redis_key_prefix,
    }
    return {
        "broker_url": url,
        "result_backend": url,
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "visibility_timeout": settings.broker_visibility_timeout,
            "global_keyprefix": settings.redis_key_prefix,
        },
        # The jobs table holds results; the backend only serves Flower and `celery inspect`.
        "task_ignore_result": True,
        "result_expires": 3600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.broker_connect_timeout,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_queues": [
            Queue(default_q, Exchange(default_q), routing_key=default_q),
            Queue(bio_q, Exchange(bio_q), routing_key=bio_q),
        ],
        "task_default_queue": default_q,
        "task_create_missing_queues": False,
        "task_routes": {name: {"queue": q} for name, q in TASK_QUEUES.items()},
        # Crash safety: ack after the task ran; requeue when the child dies mid-task.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        "worker_hijack_root_logger": False,
    }


def make_celery(settings: Settings, main: str = "mcq") -> Celery:
    app = Celery(main)
    app.conf.update(celery_config(settings))
    return app
