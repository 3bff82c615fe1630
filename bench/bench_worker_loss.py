"""Issue #17 figure: how long a job is lost when its whole worker dies.

SIGKILL of a worker's whole process group (main process and pool child) while an echo job runs,
a fresh worker started at once (as a supervisor would), and the time from the kill to the job
reading `succeeded` on the fresh worker: p50 of 10 runs, with the default lease settings
(JOB_LEASE_SECONDS=30, JOB_HEARTBEAT_SECONDS=10) and the default one-hour visibility timeout.
Production layout: gunicorn (2 uvicorn workers, each with its reaper) and Celery workers.
Target: under 45 s. The kill comes just after the job started, when its lease was just taken:
the whole lease must run out (the slow end; a kill later in a run is noticed up to a heartbeat
sooner). Measured on the 2-core machine: p50 31.1 s (min 31.0, max 31.4).
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from contextlib import ExitStack

import httpx
from _stack import celery_worker, fresh_database, gunicorn, login
from bench_auth_users import PASSWORD, seed

RUNS = 10
TARGET_SECONDS = 45


def _wait(client: httpx.Client, task_id: str, until: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/tasks/{task_id}").json()
        if job["status"] == until or job["status"] in ("failed", "canceled"):
            return dict(job)
        if time.monotonic() > deadline:
            raise RuntimeError(f"job stuck: {job}")
        time.sleep(0.05)


def main() -> None:
    with fresh_database() as env:
        seed(env, users=2)
        with gunicorn(env) as base, ExitStack() as workers:
            client = httpx.Client(
                base_url=base, headers=login(base, "bench-admin", PASSWORD), timeout=30
            )
            worker = workers.enter_context(celery_worker(env, concurrency=1))
            times, attempts = [], []
            for run in range(RUNS):
                r = client.post(
                    "/v1/tasks/diagnostics/echo", json={"payload": run, "delay_seconds": 1}
                )
                task_id = r.json()["task_id"]
                _wait(client, task_id, "progress")
                os.killpg(worker.pid, signal.SIGKILL)
                killed = time.perf_counter()
                worker = workers.enter_context(celery_worker(env, concurrency=1))
                job = _wait(client, task_id, "succeeded")
                assert job["status"] == "succeeded", job
                times.append(time.perf_counter() - killed)
                attempts.append(job["attempts"])
                print(f"run {run + 1}: succeeded {times[-1]:.1f} s after the kill", flush=True)
            p50 = statistics.median(times)
            print(
                f"whole worker SIGKILLed mid-job -> succeeded on a fresh worker, {RUNS} runs: "
                f"p50 {p50:.1f} s, min {min(times):.1f} s, max {max(times):.1f} s "
                f"(attempts {sorted(set(attempts))}; target < {TARGET_SECONDS} s: "
                f"{'met' if p50 < TARGET_SECONDS else 'MISSED'})"
            )


if __name__ == "__main__":
    main()
