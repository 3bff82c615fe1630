"""Developer commands behind the Makefile: run the whole stack, migrate, create the first admin.

When DATABASE_URL / REDIS_URL are unset, the embedded servers are started under var/ and their
URLs handed to every child process.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from common import embedded
from common.settings import ROOT, get_settings

APP_DATABASE = "mcq"


def _say(message: str) -> None:
    print(f"[mcq] {message}", flush=True)


def resolve_servers(stack: ExitStack) -> dict[str, str]:
    """Return DATABASE_URL and REDIS_URL, starting the embedded servers where unset."""
    settings = get_settings()
    env: dict[str, str] = {}
    var = Path(settings.var_dir)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    else:
        server_url, handle = embedded.start_postgres(var / "postgres")
        stack.callback(lambda: handle)  # keep the handle alive as long as the stack
        env["DATABASE_URL"] = embedded.ensure_database(server_url, APP_DATABASE)
        _say(f"embedded PostgreSQL running in {var / 'postgres'}")
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    else:
        env["REDIS_URL"] = stack.enter_context(embedded.shared_redis(var / "redis"))
        _say(f"embedded Redis running on {env['REDIS_URL']}")
    os.environ.update(env)
    get_settings.cache_clear()
    return env


def _stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def worker_command(queues: str = "default,biometrics", concurrency: int = 2) -> list[str]:
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
        f"mcq-{os.getpid()}@%h",
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
    settings = get_settings()
    port = int(os.environ.get("PORT", settings.port))
    with ExitStack() as stack:
        resolve_servers(stack)
        migrate()
        create_first_admin()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.main:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                # Own session: Ctrl-C reaches only this launcher, which then stops each child
                # once and in order, instead of every process handling the signal at once.
                start_new_session=True,
            ),
            subprocess.Popen(worker_command(), start_new_session=True),
        ]
        for proc in procs:
            stack.callback(_stop, proc)
        _say(f"API on http://127.0.0.1:{port}  docs: http://127.0.0.1:{port}/docs  (Ctrl-C stops)")
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            _say("a process exited; stopping the others")
            return 1
        except KeyboardInterrupt:
            _say("stopping")
            return 0
    return 0


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
