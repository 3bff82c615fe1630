"""The cost of the one structured access log line every request writes (api.observability).

Configures logging exactly as the API does (JSON to stderr, redirected to /dev/null here) and
times the access-log call with a request's fields, against the same call below the log level
(LOG_LEVEL=warning: structlog's stdlib chain still runs its processors before the level
check). Prints microseconds per request, to set against a request's whole cost (wrk figures).
"""

from __future__ import annotations

import os
import sys
import time

import _stack  # noqa: F401  (puts the project on sys.path)
import structlog

from common.logging import configure_logging
from common.settings import Settings

N = 20_000


def per_call(log: structlog.stdlib.BoundLogger) -> float:
    start = time.perf_counter()
    for i in range(N):
        log.info(
            "request",
            method="GET",
            route="/v1/users/me",
            status=200,
            duration_ms=1.23,
            user_id=i,
        )
    return (time.perf_counter() - start) / N * 1e6


def main() -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    figures = {}
    for level in ("info", "warning"):
        os.dup2(devnull, 2)
        sys.stderr = os.fdopen(os.dup(2), "w")
        try:
            configure_logging(Settings(log_level=level), process="api")  # type: ignore[arg-type]
            log = structlog.get_logger("api.access")
            structlog.contextvars.bind_contextvars(request_id="0" * 32)
            per_call(log)  # warm-up
            figures[level] = min(per_call(log) for _ in range(3))
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            sys.stderr = sys.__stderr__
    print(f"access log line (JSON, written): {figures['info']:.1f} us per request")
    print(f"below the log level (LOG_LEVEL=warning): {figures['warning']:.1f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
