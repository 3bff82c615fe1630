"""Password guessing over HTTP: counted atomically, per (username, address), and bounded per
username across addresses without locking the owner out.

The test client's TCP peer is the loopback address, a trusted proxy by default
(FORWARDED_ALLOW_IPS), so X-Forwarded-For speaks for different client addresses.
"""

from __future__ import annotations

import asyncio

from helpers import PASSWORD


async def login(api, username: str, password: str, address: str):
    return await api.post(
        "/v1/auth/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_a_parallel_burst_gets_no_more_verifications_than_the_limit(client, student):
    """The reported case: 20 parallel wrong guesses were all verified (limit 5)."""
    results = await asyncio.gather(
        *(login(client, student.username, f"guess-{n}", "198.51.100.7") for n in range(20))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [401] * 5 + [429] * 15
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["error"]["details"] == {"limit": "login_failures"}
    assert 0 < int(refused.headers["retry-after"]) <= 15 * 60


async def test_guesses_from_one_address_do_not_lock_the_owner_out(client, student):
    for n in range(5):
        assert (
            await login(client, student.username, f"guess-{n}", "198.51.100.7")
        ).status_code == 401
    r = await login(client, student.username, PASSWORD, "198.51.100.7")
    assert r.status_code == 429  # the guesser's address waits, even with the right password
    # The owner, at another address, logs in at once; so does anyone else at the guesser's.
    assert (await login(client, student.username, PASSWORD, "203.0.113.20")).status_code == 200
    assert (await login(client, "someone-else", "x", "198.51.100.7")).status_code == 401


async def test_a_successful_login_clears_the_counter_of_its_address(client, student):
    for n in range(4):
        assert (
            await login(client, student.username, f"typo-{n}", "203.0.113.20")
        ).status_code == 401
    assert (await login(client, student.username, PASSWORD, "203.0.113.20")).status_code == 200
    statuses = [
        (await login(client, student.username, f"typo-{n}", "203.0.113.20")).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]


async def test_a_distributed_guesser_meets_the_per_username_ceiling(peer_app, student):
    peers = await peer_app(rate_limit_login_user="6/hour")
    async with peers() as api:
        # The owner logged in from home before the attack.
        assert (await login(api, student.username, PASSWORD, "203.0.113.20")).status_code == 200
        statuses = [
            (await login(api, student.username, "guess", f"198.51.100.{n // 2}")).status_code
            for n in range(8)  # two guesses from each of four addresses
        ]
        assert statuses == [401] * 6 + [429] * 2
        r = await login(api, student.username, "guess", "198.51.100.99")  # a fresh address
        assert r.status_code == 429
        assert r.json()["error"]["details"] == {"limit": "login_user"}
        assert 3000 < int(r.headers["retry-after"]) <= 3600  # slowed, until the window moves
        # Not a lock-out: the owner at an address they logged in from still gets in...
        assert (await login(api, student.username, PASSWORD, "203.0.113.20")).status_code == 200
        # ...and other accounts are untouched.
        assert (await login(api, "someone-else", "x", "198.51.100.99")).status_code == 401
