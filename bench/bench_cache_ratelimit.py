"""Issue #7 figures: GET /v1/tests/{id} of a 50-question test as a student, cached versus
uncached, and the per-request cost of rate limiting (GET /v1/users/me with limits on and off).

Server: gunicorn with 2 uvicorn workers. Load generator: bench/_stack.py `load` (Python,
httpx + asyncio, closed loop, keep-alive, 16 concurrent clients) on the same 2-core machine.
"""

from __future__ import annotations

import httpx
from _stack import fresh_database, gunicorn, load, login
from bench_auth_users import PASSWORD, seed


def _make_test(base: str) -> int:
    admin = login(base, "bench-admin", PASSWORD)
    body = {
        "title": "Fifty questions",
        "description": "benchmark",
        "questions": [
            {
                "text": f"Question {i}: which of these is right? " + "x" * 80,
                "options": [
                    {"text": f"Option {j} " + "y" * 40, "is_correct": j == i % 4} for j in range(4)
                ],
            }
            for i in range(50)
        ],
    }
    r = httpx.post(f"{base}/v1/tests", json=body, headers=admin)
    r.raise_for_status()
    return int(r.json()["id"])


def limiter_cost(env: dict[str, str], calls: int = 3000) -> str:
    """In-process: the Redis round trips the middleware adds to one request, timed directly
    (a steadier figure than the difference of two loaded HTTP runs)."""
    import asyncio
    import os
    import time

    os.environ.update(env)
    from api.ratelimit import RateLimiter
    from common.settings import Settings

    limiter = RateLimiter(Settings(rate_limit_enabled=True))

    async def run() -> list[float]:
        samples = []
        for i in range(calls):
            start = time.perf_counter()
            await limiter.hit("user", f"user:{i % 50}")
            samples.append(time.perf_counter() - start)
        return sorted(samples)

    samples = asyncio.run(run())
    p50, p99 = samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000
    return (
        f"rate limiter per request (in-process, {calls} calls): p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )


def main() -> None:
    print("== caching and rate limiting (gunicorn 2 workers; httpx closed loop, 16 clients) ==")
    with fresh_database() as env:
        seed(env, users=3)
        for cache in ("false", "true"):
            run_env = {**env, "CACHE_ENABLED": cache, "RATE_LIMIT_ENABLED": "false"}
            with gunicorn(run_env) as base:
                test_id = _make_test(base)
                student = login(base, "student0000", PASSWORD)
                state = "on" if cache == "true" else "off"
                name = f"GET /v1/tests/{{id}} 50 q, student, cache {state}"
                path = f"/v1/tests/{test_id}"
                print(
                    load(
                        name, base, lambda c, i, path=path, h=student: c.get(path, headers=h)
                    ).line(),
                    flush=True,
                )
        results = {}
        for limits in ("false", "true"):
            run_env = {**env, "RATE_LIMIT_ENABLED": limits, "RATE_LIMIT_USER": "100000000/minute"}
            with gunicorn(run_env) as base:
                student = login(base, "student0001", PASSWORD)
                r = load(
                    f"GET /v1/users/me, rate limits {'on' if limits == 'true' else 'off'}",
                    base,
                    lambda c, i, h=student: c.get("/v1/users/me", headers=h),
                )
                results[limits] = r
                print(r.line(), flush=True)
        print(limiter_cost(env), flush=True)
        off, on = results["false"], results["true"]
        print(
            f"rate limiting overhead: {(on.pct(50) - off.pct(50)):+.2f} ms at p50, "
            f"{(1 / on.rps - 1 / off.rps) * 1000 * 16:+.2f} ms of server time per request "
            "(from throughput at 16 clients)"
        )


if __name__ == "__main__":
    main()
