"""Rate limits on the real Redis: exam-start bursts pass, password guessing does not."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from helpers import PASSWORD

from api.login_guard import LoginGuard
from api.ratelimit import RateLimiter
from common.settings import Settings


async def test_password_guessing_is_throttled_per_username(client, student):
    for attempt in range(5):
        r = await client.post(
            "/v1/auth/login", json={"username": student.username, "password": f"guess-{attempt}"}
        )
        assert r.status_code == 401
    r = await client.post(
        "/v1/auth/login", json={"username": student.username, "password": "guess-6"}
    )
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) > 0
    # Even the right password waits: the account is throttled, not the guesser's address...
    r = await client.post(
        "/v1/auth/login", json={"username": student.username, "password": PASSWORD}
    )
    assert r.status_code == 429
    # ...so classmates behind the same address still log in.
    other = await client.post("/v1/auth/login", json={"username": "someone-else", "password": "x"})
    assert other.status_code == 401


async def test_exam_start_300_students_behind_one_address(settings):
    """A class of 300 behind one NAT address: each logs in and makes a dozen requests within
    a minute. The default limits must let every one of them through."""
    defaults = {
        name: Settings.model_fields[name].default
        for name in Settings.model_fields
        if name.startswith("rate_limit_")
    }
    prefix = settings.redis_key_prefix + "nat:"
    shipped = settings.model_copy(update={**defaults, "redis_key_prefix": prefix})
    limiter = RateLimiter(shipped)
    redis = aioredis.Redis.from_url(settings.redis_url)
    guard = LoginGuard(shipped, redis)
    assert limiter.limits["user"].amount == 600  # the shipped default, not the test override
    address = "203.0.113.7"

    async def student(n: int) -> list[bool]:
        allowed = [(await limiter.hit("login_ip", address)).allowed]
        # The password check itself: one reservation per student, all from the same address.
        allowed.append(await guard.reserve(f"student{n}", address) is not None)
        for _ in range(12):
            allowed.append((await limiter.hit("user", f"user:{n}")).allowed)
            allowed.append((await limiter.hit("ip", f"ip:{address}")).allowed)
        return allowed

    try:
        results = await asyncio.gather(*(student(n) for n in range(300)))
    finally:
        await redis.aclose()
    assert sum(not ok for r in results for ok in r) == 0


async def test_default_limit_answers_429_with_headers(isolated, student, auth_for):
    client, _, _ = await isolated(rate_limit_user="3/minute")
    h = auth_for(student)
    statuses = []
    for _ in range(4):
        r = await client.get("/v1/users/me", headers=h)
        statuses.append(r.status_code)
    assert statuses == [200, 200, 200, 429]
    assert r.headers["x-ratelimit-limit"] == "3"
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert int(r.headers["retry-after"]) >= 1
    ok = await client.get("/health/live", headers=h)
    assert ok.status_code == 200  # health is never limited
