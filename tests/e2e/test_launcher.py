"""`make run`'s launcher (python -m common.cli run) stops cleanly, however it is stopped.

SIGTERM (systemd, a container runtime, `kill`) and Ctrl-C stop the API, then the worker, then
the embedded servers; a launcher killed with SIGKILL takes the API and the worker with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from helpers import ROOT, free_port


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if text in " ".join(proc.info["cmdline"] or []) and alive(proc.pid):
            found.append(proc)
    return found


class Launcher:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self.port = free_port()
        self.children: list[int] = []
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "common.cli", "run"],
                cwd=ROOT,
                env={**env, "PORT": str(self.port), "LOG_LEVEL": "info"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # like a service manager: not our process group
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_up(self, timeout: float = 120) -> list[int]:
        """Wait until the API answers and the worker is ready; return every descendant."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"launcher did not come up:\n{self.output()[-4000:]}")
            try:
                up = httpx.get(f"http://127.0.0.1:{self.port}/health/live", timeout=1)
                if up.status_code == 200 and "ready." in self.output():
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.children = [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        return self.children

    def stop_lines(self) -> list[str]:
        return [line for line in self.output().splitlines() if line.startswith("[mcq] stopped ")]

    def kill_everything(self, var: Path | None = None) -> None:
        """Safety net for a failing test: nothing of this launcher outlives it."""
        leftovers = [p.pid for p in processes_mentioning(str(var))] if var else []
        for pid in [self.proc.pid, *self.children, *leftovers]:
            if alive(pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
        self.proc.wait(10)


def wait_none_mentioning(text: str, timeout: float = 10) -> list[psutil.Process]:
    """Processes still naming `text` (e.g. the var dir: servers, the watchdog) after timeout."""
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def var_dir():
    """A var dir the embedded PostgreSQL can reach: as root, pgserver runs the server as its own
    user, which cannot enter pytest's private (0700) tmp_path."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="mcq-launcher-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def embedded_env(test_env: dict[str, str], var: Path, *, virus_scan: str) -> dict[str, str]:
    """`make run`'s environment on a fresh machine: no DATABASE_URL / REDIS_URL, so the launcher
    starts its own PostgreSQL and Redis under `var`."""
    env = {**os.environ, **test_env, "DATABASE_URL": "", "REDIS_URL": "", "VAR_DIR": str(var)}
    env.update(ENVIRONMENT="development", REDIS_KEY_PREFIX="", CLAMD_URL="", VIRUS_SCAN=virus_scan)
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_sigterm_stops_api_worker_and_embedded_servers_in_order(
    test_env, var_dir, tmp_path, stop_signal
):
    var = var_dir
    env = embedded_env(test_env, var, virus_scan="auto")
    launcher = Launcher(env, tmp_path / "launcher.log")
    try:
        children = launcher.wait_up()
        servers = [p.pid for p in processes_mentioning(str(var))]
        assert len(children) >= 4 and servers  # uvicorn, celery and its pool, redis; postgres
        launcher.proc.send_signal(stop_signal)
        assert launcher.proc.wait(60) == 0
        assert wait_gone([*children, *servers], timeout=10) == []
        assert wait_none_mentioning(str(var)) == []
    finally:
        launcher.kill_everything(var)
    out = launcher.output()
    assert launcher.stop_lines() == [
        "[mcq] stopped API",
        "[mcq] stopped worker",
        "[mcq] stopped embedded Redis",
        "[mcq] stopped embedded PostgreSQL",
    ], out[-3000:]
    # One line says what virus scanning does (no signatures on a test machine: off, and how).
    scanning = [line for line in out.splitlines() if "virus scanning" in line]
    assert len(scanning) == 1, scanning
    assert ("is off" in scanning[0] and "freshclam" in scanning[0]) or (
        "starting clamd" in scanning[0]
    )


def test_sigkilled_launcher_leaves_nothing_running(test_env, var_dir, tmp_path):
    """The API, the worker and clamd die with the launcher (PR_SET_PDEATHSIG); the embedded
    servers are stopped by their watchdog once no command that uses them is alive."""
    env = embedded_env(test_env, var_dir, virus_scan="off")
    launcher = Launcher(env, tmp_path / "launcher.log")
    try:
        children = launcher.wait_up()
        servers = [p.pid for p in processes_mentioning(str(var_dir))]
        assert len(children) >= 3 and servers  # uvicorn, celery and its pool; the servers
        launcher.proc.send_signal(signal.SIGKILL)  # no chance to clean up
        launcher.proc.wait(10)
        assert wait_gone([*children, *servers], timeout=30) == [], launcher.output()[-3000:]
        assert wait_none_mentioning(str(var_dir)) == []
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{launcher.port}/health/live", timeout=1)
    finally:
        launcher.kill_everything(var_dir)
