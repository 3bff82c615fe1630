"""Child processes of `make run`: started so that none outlives the launcher, stopped in order.

- `spawn` starts a child in its own session (Ctrl-C in the terminal reaches only the launcher,
  which then stops each child once) and, on Linux, asks the kernel to send it SIGTERM when the
  launcher dies (PR_SET_PDEATHSIG), so a launcher killed with SIGKILL leaves nothing running.
- `stop_signals` turns SIGTERM (systemd, a container runtime, `kill`) into the same orderly stop
  as Ctrl-C: it raises `Stop` once; further signals during the stop are ignored, so a second
  Ctrl-C cannot cut the stop sequence short and leave a child behind.
- `stop` ends one child (SIGTERM, then SIGKILL for whatever is left of its process group after
  a grace period, so that the children of a child, e.g. Celery's pool, go too).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Stop(BaseException):
    """SIGTERM or SIGINT reached the launcher: unwind and stop every child."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_signals() -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopping = False

    def handler(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # already stopping: let the orderly stop finish
            return
        stopping = True
        raise Stop(signum)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None  # elsewhere only the orderly stop applies
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, called after

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def spawn(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a child that stops with the launcher, however the launcher ends."""
    return subprocess.Popen(
        list(cmd), start_new_session=True, preexec_fn=_die_with_parent(os.getpid()), **kwargs
    )


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL the child's whole process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # spawn() made the child a group leader: whatever is left of its group (a stuck child, or
    # its own children after it exited) goes too.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
