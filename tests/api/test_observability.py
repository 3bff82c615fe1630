"""Request ids, access logs without secrets, Prometheus metrics."""

from __future__ import annotations

import logging

from helpers import PASSWORD


async def test_request_id_is_echoed_or_generated(client):
    r = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = (await client.get("/health/live")).headers["x-request-id"]
    assert len(generated) == 32
    # Ids that could inject into log lines are replaced, not echoed.
    r = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


async def test_access_log_has_context_and_no_secrets(client, student, caplog):
    formatter = logging.getLogger().handlers[0].formatter
    with caplog.at_level(logging.INFO):
        r = await client.post(
            "/v1/auth/login",
            json={"username": student.username, "password": PASSWORD},
            headers={"X-Request-ID": "trace-me-1"},
        )
        token = r.json()["access_token"]
        await client.get(
            f"/v1/users/{student.id}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-me-2"},
        )
    lines = [formatter.format(rec) for rec in caplog.records]
    text = "\n".join(lines)
    assert PASSWORD not in text
    assert token not in text and r.json()["refresh_token"] not in text
    access = [rec.msg for rec in caplog.records if isinstance(rec.msg, dict)]
    by_id = {e.get("request_id"): e for e in access if e.get("event") == "request"}
    assert by_id["trace-me-1"]["route"] == "/v1/auth/login"
    read = by_id["trace-me-2"]
    assert read["route"] == "/v1/users/{user_id}"
    assert read["status"] == 200 and read["user_id"] == student.id
    assert read["duration_ms"] >= 0


async def test_metrics_by_route_template(client, student, auth_for):
    h = auth_for(student)
    await client.get(f"/v1/users/{student.id}", headers=h)
    await client.get("/v1/no/such/route/12345")
    text = (await client.get("/metrics")).text
    assert 'mcq_http_requests_total{method="GET",route="/v1/users/{user_id}",status="200"}' in text
    assert 'route="<unmatched>"' in text and "/v1/no/such/route" not in text
    assert "mcq_http_request_duration_seconds_bucket" in text
    assert "mcq_http_requests_in_flight" in text
    assert 'mcq_db_pool_connections{state="checked_out"}' in text
    assert 'mcq_queue_depth{queue="default"}' in text


async def test_metrics_token_guards_the_endpoint(isolated):
    client, _, _ = await isolated(metrics_token="scrape-secret")
    assert (await client.get("/metrics")).status_code == 404
    r = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert r.status_code == 200 and "mcq_http_requests_total" in r.text


COMPONENTS = {"database", "redis", "broker", "storage", "workers", "scanner"}


async def test_health_shows_anonymous_callers_statuses_only(client, worker):
    r = await client.get("/health")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"status", "components"} and body["status"] == "ok"
    assert set(body["components"]) == COMPONENTS
    # No latencies, host names, versions or backends for an anonymous caller.
    assert all(set(c) == {"status"} for c in body["components"].values()), body
    assert body["components"]["scanner"] == {"status": "disabled"}  # no CLAMD_URL here
    assert "answered" not in r.text and "latency_ms" not in r.text


async def test_health_details_for_an_admin_or_the_metrics_token(isolated, admin, student, auth_for):
    client, _, start = await isolated(metrics_token="scrape-secret")
    start(concurrency=1)
    for headers in ({"Authorization": "Bearer scrape-secret"}, auth_for(admin)):
        r = await client.get("/health", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"]
        components = body["components"]
        assert set(components) == COMPONENTS
        fine = {k: c for k, c in components.items() if k != "scanner"}
        assert all(c["status"] == "ok" and c["latency_ms"] >= 0 for c in fine.values())
        assert "@" in components["workers"]["answered"]  # the worker's node name
    # A student, a wrong token or garbage: the public view, not an error.
    for headers in (
        auth_for(student),
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic x"},
    ):
        r = await client.get("/health", headers=headers)
        assert r.status_code == 200
        assert all(set(c) == {"status"} for c in r.json()["components"].values())
        assert "version" not in r.json()


async def test_a_flood_of_health_checks_pings_the_workers_once(isolated):
    import asyncio

    client, _, start = await isolated()
    start(concurrency=1)
    resources = client._transport.app.state.resources
    control = resources.celery.control
    real_ping, pings = control.ping, []

    def counting_ping(*args, **kwargs):  # the real broadcast, counted
        pings.append(1)
        return real_ping(*args, **kwargs)

    control.ping = counting_ping
    answers = await asyncio.gather(*(client.get("/health") for _ in range(50)))
    assert {r.status_code for r in answers} == {200}
    assert len(pings) == 1  # 50 concurrent callers shared one broadcast ping
    await asyncio.sleep(1.2)  # the shared result lasts a second: then the next caller re-checks
    assert (await client.get("/health")).status_code == 200
    assert len(pings) == 2


async def test_health_reports_the_virus_scanner(isolated, clamd_server, admin, auth_for, tmp_path):
    h = auth_for(admin)
    up, _, _ = await isolated(clamd_url=clamd_server.url)
    scanner = (await up.get("/health", headers=h)).json()["components"]["scanner"]
    assert scanner["status"] == "ok" and scanner["version"].startswith("ClamAV ")
    down, _, _ = await isolated(clamd_url=f"unix://{tmp_path / 'no-clamd.sock'}")
    r = await down.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"
    assert r.json()["components"]["scanner"] == {"status": "down"}
    off, _, _ = await isolated(clamd_url=clamd_server.url, virus_scan="off")
    r = await off.get("/health")
    assert r.json()["components"]["scanner"] == {"status": "disabled"}


def test_production_api_refuses_to_start_without_a_metrics_token(settings):
    import pytest

    from api.main import create_app
    from common.settings import Settings

    with pytest.raises(RuntimeError, match="METRICS_TOKEN"):
        create_app(Settings(environment="production"))
    create_app(Settings(environment="production", metrics_token="scrape-secret"))


async def test_production_metrics_need_the_token(isolated):
    client, _, _ = await isolated(environment="production", metrics_token="scrape-secret")
    assert (await client.get("/metrics")).status_code == 404
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secreT"})
    assert wrong.status_code == 404
    r = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert r.status_code == 200 and "mcq_http_requests_total" in r.text


async def test_every_operation_is_documented(app):
    for path, operations in app.openapi()["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("tags"), where
            assert op.get("summary"), where
            assert op.get("description"), where
