"""Password hashing on bounded workers, so that a login storm queues behind the cores it is
given instead of taking every core from the requests that open, start and submit tests.

Argon2 (argon2-cffi) releases the GIL while it hashes, so a few threads hash in parallel while
the event loop keeps serving. The hashing threads run at a lower CPU priority (nice +10, Linux
schedules threads individually): when a core is contended, the event loops (open, start,
submit, every other request) run first and the logins wait, which is the order a storm wants.
More than PASSWORD_HASH_QUEUE hashes waiting or running in this process: 503 `login_busy`
with a Retry-After estimated from the queue and the recent hash time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from common.errors import Unavailable
from common.settings import Settings

T = TypeVar("T")


LOWER_PRIORITY = 10


def worker_count(settings: Settings) -> int:
    # Half the cores by default: the other half stays with the event loops of the API
    # processes (and PostgreSQL) while logins queue.
    return settings.password_hash_workers or max(1, (os.cpu_count() or 2) // 2)


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWER_PRIORITY)


class PasswordWorkers:
    def __init__(self, settings: Settings) -> None:
        self.workers = worker_count(settings)
        self.limit = settings.password_hash_queue
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="password-hash", initializer=_lower_priority
        )
        self._pending = 0
        self._seconds = 0.05  # recent time per hash (moving average), for Retry-After

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self.limit:
            wait = self._pending * self._seconds / self.workers
            raise Unavailable(
                "too many logins at once; retry shortly",
                code="login_busy",
                retry_after=max(1, math.ceil(wait)),
            )
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._timed, fn, *args
            )
        finally:
            self._pending -= 1

    def _timed(self, fn: Callable[..., T], *args: object) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - start)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
