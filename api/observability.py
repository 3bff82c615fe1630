"""Request id, access log and HTTP metrics, as one pure ASGI middleware (no body buffering)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
QUIET_PATHS = frozenset({"/health/live", "/metrics"})


def _route_template(scope: Scope) -> str:
    """The matched route's template with its router prefixes, e.g. /v1/users/{user_id}."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        # Unmatched paths share one label, so random URLs cannot explode the cardinality.
        return "<unmatched>"
    # Included routers keep their own relative path; the prefix is what precedes it.
    actual = scope["path"].rstrip("/").split("/")
    relative = str(template).rstrip("/").split("/")
    extra = len(actual) - len(relative)
    if extra <= 0:
        return str(template)
    return "/".join(actual[: 1 + extra] + relative[1:])


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            if scope["path"] not in QUIET_PATHS:
                log.info(
                    "request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    user_id=scope["state"].get("user_id"),
                )
            structlog.contextvars.unbind_contextvars("request_id")
