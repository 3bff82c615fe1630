"""Prometheus metrics shared by the API processes.

Under gunicorn each worker process has its own registry; set PROMETHEUS_MULTIPROC_DIR (an empty
directory) and /metrics aggregates all of them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("mcq_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "mcq_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_FLIGHT = Gauge(
    "mcq_http_requests_in_flight", "HTTP requests being served", multiprocess_mode="livesum"
)
CACHE_EVENTS = Counter("mcq_cache_events_total", "Cache lookups", ["cache", "result"])
PRINCIPAL_CACHE = Counter(
    "mcq_principal_cache_total", "Principal (session, user) lookups", ["result"]
)
RATE_LIMITED = Counter("mcq_rate_limit_rejections_total", "Requests refused with 429", ["limit"])
FAIL_OPEN = Counter(
    "mcq_fail_open_total", "Redis errors that a feature tolerated (fail open)", ["feature"]
)
DB_POOL = Gauge(
    "mcq_db_pool_connections", "Database pool connections", ["state"], multiprocess_mode="livesum"
)
JOBS = Gauge("mcq_jobs", "Jobs by kind and status", ["kind", "status"], multiprocess_mode="max")
QUEUE_DEPTH = Gauge(
    "mcq_queue_depth", "Messages waiting per Celery queue", ["queue"], multiprocess_mode="max"
)
