"""Developer commands behind the Makefile: run the whole stack, migrate, create the first admin.

When DATABASE_URL / REDIS_URL are unset, the embedded servers are started under var/ and their
URLs handed to every child process.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from common import embedded, local_clamd, supervise
from common.settings import ROOT, get_settings

APP_DATABASE = "mcq"


def _say(message: str) -> None:
    print(f"[mcq] {message}", flush=True)


def resolve_servers(stack: ExitStack) -> dict[str, str]:
    """Return DATABASE_URL and REDIS_URL, starting the embedded servers where unset.

    The stack stops them in reverse order (Redis, then PostgreSQL) when it unwinds. They are
    shared with other commands running at the same time: the last one to leave stops them, or
    the watchdog in common.embedded does when every user was killed.
    """
    settings = get_settings()
    env: dict[str, str] = {}
    var = Path(settings.var_dir)
    if not (settings.database_url and settings.redis_url):
        # Unregistered last (after the servers stopped); a watchdog stops them if this process
        # and every other user die without unregistering (SIGKILL).
        stack.enter_context(embedded.registered_user(var))
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    else:
        server_url, handle = embedded.start_postgres(var / "postgres")
        stack.callback(_stopped, "embedded PostgreSQL", handle.cleanup)
        env["DATABASE_URL"] = embedded.ensure_database(server_url, APP_DATABASE)
        _say(f"embedded PostgreSQL running in {var / 'postgres'}")
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    else:
        stack.callback(_say, "stopped embedded Redis")  # runs after the context below exits
        env["REDIS_URL"] = stack.enter_context(embedded.shared_redis(var / "redis"))
        _say(f"embedded Redis running on {env['REDIS_URL']}")
    os.environ.update(env)
    get_settings.cache_clear()
    return env


def _stopped(name: str, stop: Callable[[], object]) -> None:
    stop()
    _say(f"stopped {name}")


def start_scanner(stack: ExitStack) -> None:
    """A local clamd when the machine has one and its signatures (common.local_clamd); one line
    saying what virus scanning does either way."""
    settings = get_settings()
    plan = local_clamd.plan(settings)
    _say(plan.message)
    if plan.clamd is None or plan.database is None:
        return
    conf, sock = local_clamd.write_config(
        Path(settings.var_dir) / "clamd", plan.database, max_upload=settings.upload_max_bytes
    )
    # Its log is var/clamd/clamd.log; stderr stays on the terminal for start-up errors.
    proc = supervise.spawn(
        [plan.clamd, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    stack.callback(_stopped, "clamd", lambda: supervise.stop(proc))
    os.environ["CLAMD_URL"] = f"unix://{sock}"
    get_settings.cache_clear()


def migrate() -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "heads"],
        check=True,
        cwd=ROOT,
    )


def create_first_admin() -> None:
    from sqlalchemy import func, select

    from common.db import SyncDatabase
    from common.models import User
    from common.security import hash_password

    settings = get_settings()
    database = SyncDatabase(settings)
    try:
        with database.transaction() as session:
            if session.scalar(select(func.count()).select_from(User).where(User.role == "admin")):
                return
            given = settings.first_admin_password
            password = given.get_secret_value() if given else secrets.token_urlsafe(12)
            session.add(
                User(
                    username=settings.first_admin_username,
                    role="admin",
                    password_hash=hash_password(password),
                )
            )
        if given:
            _say(f"created admin '{settings.first_admin_username}' (FIRST_ADMIN_PASSWORD)")
        else:
            _say(
                f"created admin '{settings.first_admin_username}' with password: {password}  "
                "(shown once; set FIRST_ADMIN_PASSWORD to choose it)"
            )
    finally:
        database.dispose()


def worker_command(
    queues: str = "default,biometrics", concurrency: int = 2, name: str | None = None
) -> list[str]:
    """The `celery worker` command line `make run` starts; tests and benches start the same.
    `name` is the node name (unique per worker on one host); mingle and gossip are off: our
    workers share nothing through them, and they only slow a worker's start."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "--loglevel",
        "INFO",
        "-n",
        name or f"mcq-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
    ]


def flower() -> int:
    """Flower against the configured broker, behind basic auth."""
    settings = get_settings()
    user = settings.flower_user
    password = settings.flower_password.get_secret_value() if settings.flower_password else ""
    if not (user and password):
        if settings.environment != "development":
            _say("refusing to start Flower without FLOWER_USER and FLOWER_PASSWORD")
            return 2
        user, password = "admin", secrets.token_urlsafe(12)
        _say(f"Flower login (development, generated): {user} / {password}")
    _say(f"Flower on http://127.0.0.1:{settings.flower_port}")
    return subprocess.call(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "flower",
            f"--port={settings.flower_port}",
            "--address=127.0.0.1",
            f"--basic-auth={user}:{password}",
            # Flower persists nothing; the jobs table is the record of work.
            "--persistent=False",
            "--purge_offline_workers=300",
        ]
    )


def run() -> int:
    """API and worker, with the servers they need. SIGTERM or Ctrl-C stops the API, then the
    worker, then the servers started here; a SIGKILLed launcher takes the API, the worker and
    clamd with it (common.supervise)."""
    settings = get_settings()
    port = int(os.environ.get("PORT", settings.port))
    with supervise.stop_signals(), ExitStack() as stack:
        try:
            resolve_servers(stack)
            start_scanner(stack)
            migrate()
            create_first_admin()
            children: list[tuple[str, subprocess.Popen[bytes]]] = []
            stack.callback(_stop_children, children)
            api_cmd = [
                *(sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port)),
                # The same trusted proxies as the app (a value set only in .env reaches both).
                *("--forwarded-allow-ips", settings.forwarded_allow_ips),
            ]
            children.append(("API", supervise.spawn(api_cmd)))
            children.append(("worker", supervise.spawn(worker_command())))
            _say(
                f"API on http://127.0.0.1:{port}  docs: http://127.0.0.1:{port}/docs  "
                "(Ctrl-C stops)"
            )
            while all(p.poll() is None for _, p in children):
                time.sleep(0.5)
            _say("a process exited; stopping the others")
            return 1
        except supervise.Stop as stop:
            _say(f"{stop}: stopping")
            return 0
    return 0


def _stop_children(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """In the order they were started: the API first (no new work), then the worker."""
    for name, proc in children:
        supervise.stop(proc)
        _say(f"stopped {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, create the first admin, run API and worker")
    sub.add_parser("migrate", help="alembic upgrade head")
    sub.add_parser("create-admin", help="create the first admin if there is none")
    sub.add_parser("flower", help="the Flower dashboard, with basic auth")
    env_parser = sub.add_parser("exec", help="run a command with the server URLs set")
    env_parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run()
    with ExitStack() as stack:
        resolve_servers(stack)
        if args.command == "migrate":
            migrate()
        elif args.command == "create-admin":
            create_first_admin()
        elif args.command == "flower":
            return flower()
        elif args.command == "exec":
            return subprocess.call(args.cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
