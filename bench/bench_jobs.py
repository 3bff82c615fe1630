"""Issue #3 figures: diagnostic echo jobs end to end (POST -> succeeded), and jobs/s through one
worker with concurrency 2, against gunicorn (2 uvicorn workers) and a real Celery worker."""

from __future__ import annotations

import asyncio
import time

import httpx
from _stack import celery_worker, fresh_database, gunicorn, login, summary
from bench_auth_users import PASSWORD, seed

LATENCY_JOBS = 200
THROUGHPUT_JOBS = 1000


async def _wait(client: httpx.AsyncClient, task_id: str, auth: dict[str, str]) -> str:
    while True:
        job = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return str(job["status"])
        await asyncio.sleep(0.002)


async def measure(base: str, auth: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        latencies = []
        for i in range(LATENCY_JOBS):
            start = time.perf_counter()
            r = await client.post("/v1/tasks/diagnostics/echo", json={"payload": i}, headers=auth)
            status = await _wait(client, r.json()["task_id"], auth)
            assert status == "succeeded", status
            latencies.append(time.perf_counter() - start)
        print(f"echo job POST -> succeeded, {LATENCY_JOBS} sequential jobs: {summary(latencies)}")

        start = time.perf_counter()
        sem = asyncio.Semaphore(16)

        async def submit(i: int) -> str:
            async with sem:
                r = await client.post(
                    "/v1/tasks/diagnostics/echo", json={"payload": i}, headers=auth
                )
                return str(r.json()["task_id"])

        ids = await asyncio.gather(*(submit(i) for i in range(THROUGHPUT_JOBS)))
        submitted = time.perf_counter() - start
        for task_id in ids:
            while (await _wait(client, task_id, auth)) != "succeeded":
                pass
        elapsed = time.perf_counter() - start
        print(
            f"throughput: {THROUGHPUT_JOBS} echo jobs through 1 worker (concurrency 2): "
            f"{THROUGHPUT_JOBS / elapsed:.0f} jobs/s (all enqueued in {submitted:.1f} s, "
            f"all succeeded after {elapsed:.1f} s)"
        )


def main() -> None:
    with fresh_database() as env:
        seed(env, users=2)
        with celery_worker(env, queues="default", concurrency=2), gunicorn(env) as base:
            auth = login(base, "bench-admin", PASSWORD)
            print("== background jobs (diagnostic echo, delay 0) ==")
            asyncio.run(measure(base, auth))


if __name__ == "__main__":
    main()
