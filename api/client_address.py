"""Who is calling: the TCP peer, or the client a proxy we trust says it forwards.

FORWARDED_ALLOW_IPS names the trusted proxies. `TrustedProxiesMiddleware` (uvicorn's proxy-header
rule, configured from that setting, outermost in the app) replaces the peer address with the
X-Forwarded-For client only when the peer is one of them; from anyone else the header changes
nothing. `client_ip` reads the result: the rate limits and the login guard key on it.

gunicorn and uvicorn apply the same rule from the same environment variable before the app
sees the request; applying it again here is a no-op then (the resolved client is not a trusted
proxy), and it holds on its own wherever the server was started without it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from common.settings import Settings


class TrustedProxiesMiddleware(ProxyHeadersMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        # Starlette's and uvicorn's ASGI type aliases differ in name only.
        super().__init__(app, trusted_hosts=settings.forwarded_allow_ips)  # type: ignore[arg-type]


def client_ip(scope: Scope) -> str:
    """The client's address as resolved by TrustedProxiesMiddleware."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
