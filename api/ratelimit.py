"""Rate limits on Redis (the `limits` library, sliding window counters), failing open.

Defaults apply per user (authenticated) or per client address (anonymous,
api.client_address); uploads and logins have stricter limits of their own. A school's NAT puts
a whole class behind one address, so the per-address limits are generous; password guessing
is limited per username and address instead (api.login_guard).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.client_address import client_ip
from api.errors import error_response
from api.upload_routes import is_upload
from common.metrics import FAIL_OPEN, RATE_LIMITED
from common.security import InvalidToken, decode_token
from common.settings import Settings

log = structlog.get_logger(__name__)

EXEMPT_PREFIXES = ("/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/static-offline")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    name: str

    def headers(self) -> dict[str, str]:
        reset_in = max(0, int(self.reset_at - time.time()) + 1)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(reset_in),
        }
        if not self.allowed:
            headers["Retry-After"] = str(reset_in)
        return headers


def _storage_uri(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.storage = RedisStorage(
            _storage_uri(settings.redis_url),
            implementation="redispy",
            key_prefix=f"{settings.redis_key_prefix}rl",
            socket_connect_timeout=1,
            socket_timeout=1,
        )
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.limits: dict[str, RateLimitItem] = {
            "user": parse(settings.rate_limit_user),
            "ip": parse(settings.rate_limit_ip),
            "upload": parse(settings.rate_limit_uploads),
            "login_ip": parse(settings.rate_limit_login_ip),
        }

    async def _run(self, name: str, key: str, *, hit: bool) -> Decision:
        item = self.limits[name]
        if not self.enabled:
            return Decision(True, item.amount, item.amount, time.time(), name)
        try:
            if hit:
                allowed = await self.strategy.hit(item, name, key)
            else:
                allowed = await self.strategy.test(item, name, key)
            stats = await self.strategy.get_window_stats(item, name, key)
            decision = Decision(allowed, item.amount, stats.remaining, stats.reset_time, name)
        except Exception as exc:
            # Redis down: let the request through (logged and counted), never a 500.
            FAIL_OPEN.labels("rate_limit").inc()
            log.warning("rate_limit.fail_open", error=type(exc).__name__)
            return Decision(True, item.amount, item.amount, time.time(), name)
        if not decision.allowed:
            RATE_LIMITED.labels(name).inc()
        return decision

    async def hit(self, name: str, key: str) -> Decision:
        return await self._run(name, key, hit=True)

    async def test(self, name: str, key: str) -> Decision:
        return await self._run(name, key, hit=False)


class RateLimitMiddleware:
    """Default per-user / per-address limits and the upload limit, for every API route."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _subject(self, scope: Scope) -> tuple[str, str]:
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            try:
                claims = decode_token(self.settings, auth[7:].strip(), expected="access")
                return "user", f"user:{claims.sub}"
            except InvalidToken:
                pass  # the route answers 401; count it against the address
        return "ip", f"ip:{client_ip(scope)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.resources.rate_limiter
        name, key = self._subject(scope)
        decision = await limiter.hit(name, key)
        if decision.allowed and is_upload(scope):
            decision = await limiter.hit("upload", key)
        if not decision.allowed:
            response = error_response(
                429,
                "rate_limited",
                "Too many requests; slow down and retry after the indicated delay.",
                {"limit": decision.name},
                headers=decision.headers(),
            )
            await response(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
