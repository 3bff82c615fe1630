"""Request bodies are bounded before anything reads them: MAX_REQUEST_BODY_BYTES for every
route but the uploads (api.upload_routes), which stream and bound their bodies themselves.

A Content-Length above the limit is answered 413 at once, without reading the body. A body
without a length (chunked) is counted as it arrives and cut off at the limit: the reader gets
an exception instead of the next chunk, and the client gets 413 whatever the app made of that.
The connection is closed after a 413, so the unread rest is never read.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.upload_routes import is_upload


class BodyTooLarge(Exception):
    """Raised to the app's body reader when the body passes the limit."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes:,} bytes",
            {"max_bytes": self.max_bytes},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_upload(scope):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app answered to the cut-off body, the answer is 413
            started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # BodyTooLarge itself, or whatever a reader turned it into.
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)
