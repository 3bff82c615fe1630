"""Password guessing: limited per guesser, never a weapon against the account's owner.

Every login attempt reserves a slot in two sliding windows *before* its password is verified,
atomically (one Lua script), so a burst of parallel guesses gets no more verifications than
the limit:

- per (username, client address), RATE_LIMIT_LOGIN_FAILURES (5 per 15 minutes): a guesser at
  one address slows only itself; the owner logging in from another address is not affected.
- per username over all addresses, RATE_LIMIT_LOGIN_USER (100 per hour): a guesser with many
  addresses still gets nowhere. An address the user logged in from in the last 30 days is
  exempt from this one, so that a distributed guesser cannot keep the owner out either.

Over a limit the answer is 429 with Retry-After (when the oldest attempt leaves the window):
nothing is locked, the window just moves on. A successful login gives its slot back and clears
its (username, address) window; a wrong password keeps its slot. The address is
`api.client_address.client_ip`. Redis down: the guard fails open, like the other limits.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from limits import parse

from api.errors import TooManyRequests
from common.errors import Unauthorized
from common.metrics import FAIL_OPEN, RATE_LIMITED
from common.settings import Settings

log = structlog.get_logger(__name__)

KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600

# KEYS: the (username, address) window, the username window, the known-address marker.
# ARGV: now (ms), this attempt's token, pair limit, pair window (ms), user limit, user window.
# Returns {0, remaining} when reserved, {1 | 2, retry_after_ms} when over the pair | user limit.
_RESERVE = """
local now = tonumber(ARGV[1])
local pair_limit, pair_window = tonumber(ARGV[3]), tonumber(ARGV[4])
local user_limit, user_window = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - pair_window)
local pair = redis.call('ZCARD', KEYS[1])
if pair >= pair_limit then
  local first = redis.call('ZRANGE', KEYS[1], pair - pair_limit, pair - pair_limit, 'WITHSCORES')
  return {1, tonumber(first[2]) + pair_window - now}
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - user_window)
  local user = redis.call('ZCARD', KEYS[2])
  if user >= user_limit then
    local first = redis.call('ZRANGE', KEYS[2], user - user_limit, user - user_limit, 'WITHSCORES')
    return {2, tonumber(first[2]) + user_window - now}
  end
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[2], user_window)
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], pair_window)
return {0, pair_limit - pair - 1}
"""

_LIMIT_NAMES = {1: "login_failures", 2: "login_user"}


@dataclass(frozen=True)
class Reservation:
    pair_key: str
    user_key: str
    known_key: str
    token: str


class LoginGuard:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.enabled = settings.rate_limit_enabled
        self.redis = redis
        self.prefix = f"{settings.redis_key_prefix}rl:login:"
        pair, user = (
            parse(settings.rate_limit_login_failures),
            parse(settings.rate_limit_login_user),
        )
        self.pair_limit, self.pair_window_ms = pair.amount, pair.get_expiry() * 1000
        self.user_limit, self.user_window_ms = user.amount, user.get_expiry() * 1000
        self._reserve = redis.register_script(_RESERVE)

    def _keys(self, username: str, address: str) -> tuple[str, str, str]:
        account = username.lower()  # logins are case-insensitive
        both = hashlib.blake2b(f"{account}\n{address}".encode(), digest_size=16).hexdigest()
        return (
            f"{self.prefix}pair:{both}",
            f"{self.prefix}user:{account}",
            f"{self.prefix}known:{both}",
        )

    async def reserve(self, username: str, address: str) -> Reservation | None:
        """A slot for one verification, or 429 over a limit (None: not counted)."""
        if not self.enabled:
            return None
        reservation = Reservation(*self._keys(username, address), token=uuid.uuid4().hex)
        try:
            outcome, value = await self._reserve(
                keys=[reservation.pair_key, reservation.user_key, reservation.known_key],
                args=[
                    int(time.time() * 1000),
                    reservation.token,
                    self.pair_limit,
                    self.pair_window_ms,
                    self.user_limit,
                    self.user_window_ms,
                ],
            )
        except Exception as exc:
            FAIL_OPEN.labels("rate_limit").inc()
            log.warning("login_guard.fail_open", error=type(exc).__name__)
            return None
        if outcome != 0:
            name = _LIMIT_NAMES[int(outcome)]
            RATE_LIMITED.labels(name).inc()
            raise TooManyRequests(
                "too many failed logins for this account; retry later",
                details={"limit": name},
                headers={"Retry-After": str(max(1, math.ceil(int(value) / 1000)))},
            )
        return reservation

    async def _finish(self, reservation: Reservation | None, *, succeeded: bool) -> None:
        if reservation is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(reservation.user_key, reservation.token)
                if succeeded:
                    pipe.delete(reservation.pair_key)
                    pipe.set(reservation.known_key, 1, ex=KNOWN_ADDRESS_SECONDS)
                else:
                    pipe.zrem(reservation.pair_key, reservation.token)
                await pipe.execute()
        except Exception as exc:
            log.warning("login_guard.release_failed", error=type(exc).__name__)

    @asynccontextmanager
    async def attempt(self, username: str, address: str) -> AsyncIterator[None]:
        """Wrap one password verification: 429 before it when over a limit; a wrong password
        (Unauthorized) keeps its slot, success clears the address's window, anything else
        (the database down, a cancelled request) gives the slot back."""
        reservation = await self.reserve(username, address)
        try:
            yield
        except Unauthorized:
            raise
        except BaseException:
            await self._finish(reservation, succeeded=False)
            raise
        await self._finish(reservation, succeeded=True)
