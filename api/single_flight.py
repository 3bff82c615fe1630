"""One computation shared by concurrent callers, reused for a moment after it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class SharedResult(Generic[T]):
    """One computation shared by concurrent callers and reused for `ttl` seconds after it ends
    (single-flight, per process and event loop)."""

    ttl: float
    _task: asyncio.Task[T] | None = field(default=None, repr=False)
    _done_at: float = field(default=float("-inf"), repr=False)

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        task = self._task
        stale = task is None or task.get_loop() is not loop
        if task is not None and not stale and task.done():
            stale = time.monotonic() - self._done_at > self.ttl
        if stale:
            task = loop.create_task(_awaited(compute))
            task.add_done_callback(self._finished)
            self._task = task
        assert task is not None
        # shield: a caller that disconnects must not cancel the run the others wait for.
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[T]) -> None:
        self._done_at = time.monotonic()
        if not task.cancelled():
            task.exception()  # handed to every waiter; retrieved here even if none is left


async def _awaited(compute: Callable[[], Awaitable[T]]) -> T:
    return await compute()
