"""Only the proxies named in FORWARDED_ALLOW_IPS may say who the client is: from anyone else,
X-Forwarded-For changes nothing (rate-limit buckets, login counters)."""

from __future__ import annotations

import re

import pytest
from helpers import PASSWORD, ROOT
from pydantic import ValidationError

from common.settings import Settings


async def anonymous_statuses(api, forwarded_for: list[str]) -> list[int]:
    return [
        (await api.get("/v1/users/me", headers={"X-Forwarded-For": ip})).status_code
        for ip in forwarded_for
    ]


SPOOFED = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


async def test_spoofed_forwarded_for_from_an_untrusted_peer_keeps_its_bucket(peer_app):
    peers = await peer_app(rate_limit_ip="3/minute")
    async with peers("203.0.113.50") as api:  # a client on the internet, not a proxy
        assert await anonymous_statuses(api, SPOOFED) == [401, 401, 401, 429]
    async with peers("127.0.0.1") as proxy:  # the trusted proxy: one bucket per client
        assert await anonymous_statuses(proxy, SPOOFED) == [401, 401, 401, 401]


async def test_spoofed_forwarded_for_does_not_reset_login_counters(peer_app, student):
    peers = await peer_app()
    async with peers("203.0.113.50") as api:
        statuses = [
            (
                await api.post(
                    "/v1/auth/login",
                    json={"username": student.username, "password": f"guess-{n}"},
                    headers={"X-Forwarded-For": f"10.0.0.{n}"},
                )
            ).status_code
            for n in range(7)
        ]
        assert statuses == [401] * 5 + [429] * 2


async def test_with_no_trusted_proxy_even_loopback_is_taken_at_its_word(peer_app):
    """The API image's default (FORWARDED_ALLOW_IPS empty): no header is believed."""
    peers = await peer_app(rate_limit_ip="3/minute", forwarded_allow_ips="")
    async with peers("127.0.0.1") as api:
        assert await anonymous_statuses(api, SPOOFED) == [401, 401, 401, 429]


async def test_a_trusted_network_names_the_client(peer_app, student):
    peers = await peer_app(forwarded_allow_ips="10.20.0.0/16")
    async with peers("10.20.3.4") as proxy:
        for _ in range(5):
            r = await proxy.post(
                "/v1/auth/login",
                json={"username": student.username, "password": "guess"},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
            assert r.status_code == 401
        # The client behind the proxy is counted, not the proxy: another client logs in.
        r = await proxy.post(
            "/v1/auth/login",
            json={"username": student.username, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.20"},
        )
        assert r.status_code == 200


@pytest.mark.parametrize("value", ["10.0.0.1/8", "not-an-address", "10.0.0.1,,x"])
def test_a_malformed_proxy_list_is_refused_at_start(value):
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        Settings(forwarded_allow_ips=value)


def test_the_api_image_trusts_no_proxy_unless_told():
    dockerfile = (ROOT / "Dockerfile.api").read_text()
    assert re.search(r'^\s*FORWARDED_ALLOW_IPS=""', dockerfile, re.M)
    assert "--forwarded-allow-ips='*'" not in dockerfile
    assert re.search(r'--forwarded-allow-ips \\?"\$\{FORWARDED_ALLOW_IPS\}', dockerfile)
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "FORWARDED_ALLOW_IPS:" in compose
