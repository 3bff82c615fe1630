"""Redis stopped and started under a running API: what fails open, what fails fast, and that
everything comes back without a restart."""

from __future__ import annotations

import pytest

from common import embedded


@pytest.fixture
def own_redis(tmp_path):
    state = {}
    state["url"], state["proc"] = embedded.start_redis(tmp_path / "redis", persist=False)

    def stop() -> None:
        state["proc"].kill()
        state["proc"].wait()

    def start() -> None:
        url, state["proc"] = embedded.start_redis(tmp_path / "redis", persist=False)
        assert url == state["url"]

    yield state["url"], stop, start
    stop()


async def test_redis_down_fails_open_and_recovers(isolated, own_redis, admin, auth_for):
    url, stop_redis, start_redis = own_redis
    client, _, _ = await isolated(redis_url=url, broker_connect_timeout=0.5)
    h = auth_for(admin)
    r = await client.get("/v1/users/me", headers=h)
    assert r.status_code == 200 and "x-ratelimit-limit" in r.headers

    stop_redis()
    # Rate limiting fails open: reads and writes keep working.
    assert (await client.get("/v1/users/me", headers=h)).status_code == 200
    created = await client.post(
        "/v1/users",
        json={"username": "during.outage", "password": "Outage-pass-1", "role": "student"},
        headers=h,
    )
    assert created.status_code == 201
    login = await client.post(
        "/v1/auth/login", json={"username": "during.outage", "password": "Outage-pass-1"}
    )
    assert login.status_code == 200
    # Enqueueing cannot work without the broker: a clear 503, not a stuck job.
    r = await client.post(
        "/v1/tasks/diagnostics/echo", json={"payload": 1, "delay_seconds": 0}, headers=h
    )
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "queue_unavailable"
    health = await client.get("/health")
    assert health.status_code == 503
    components = health.json()["components"]
    assert components["redis"]["status"] == "down"
    assert components["broker"]["status"] == "down"
    assert components["database"]["status"] == "ok"
    assert components["storage"]["status"] == "ok"
    metrics = (await client.get("/metrics")).text
    assert 'mcq_fail_open_total{feature="rate_limit"}' in metrics

    start_redis()
    r = await client.get("/v1/users/me", headers=h)
    assert r.status_code == 200 and "x-ratelimit-limit" in r.headers
    health = (await client.get("/health")).json()["components"]
    assert health["redis"]["status"] == "ok" and health["broker"]["status"] == "ok"
    r = await client.post(
        "/v1/tasks/diagnostics/echo", json={"payload": 2, "delay_seconds": 0}, headers=h
    )
    assert r.status_code == 202
