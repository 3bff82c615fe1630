"""One error body for every 4xx/5xx: {"error": {"code", "message", "details"}}.

Services raise domain errors (common.errors); this module alone turns them into HTTP: the
status by kind (`STATUS_OF_KIND`), `Retry-After` from `retry_after`, `WWW-Authenticate` on 401.
Only what is purely HTTP is defined here: the rate limits' headers (`TooManyRequests`), the
bodies of errors raised outside any route (body limit, rate limit middleware).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from common import errors

log = structlog.get_logger(__name__)

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}


# The one place a domain error (common.errors) becomes an HTTP status: by its kind.
STATUS_OF_KIND: dict[type[errors.DomainError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedType: 415,
    errors.Unprocessable: 422,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


def status_of(exc: errors.DomainError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF_KIND:
            return STATUS_OF_KIND[kind]
    return 400


class TooManyRequests(errors.RateLimited):
    """The API's own rate limits (api.ratelimit, api.login_guard): purely HTTP, they also carry
    the X-RateLimit-* headers of the limit that refused the request."""

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers = dict(headers or {})


def headers_of(exc: errors.DomainError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"  # RFC 6750: a 401 names its scheme
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, TooManyRequests):
        headers.update(exc.headers)
    return headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'questions', 3, 'options') -> 'questions[3].options'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:] or parts
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = err.get("loc", ())
        details.append(
            {
                "path": field_path(loc),
                "location": loc[0] if loc else None,
                "message": err.get("msg", "invalid"),
                "type": err.get("type", "invalid"),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain_error(_: Request, exc: errors.DomainError) -> JSONResponse:
        return error_response(status_of(exc), exc.code, exc.message, exc.details, headers_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"path": "", "message": "invalid request"}
        message = f"{first['path']}: {first['message']}" if first["path"] else first["message"]
        return error_response(422, "validation_error", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # Services check what they can; a race that reaches a constraint is still a conflict.
        log.info("integrity_error", error=str(exc.orig))
        return error_response(409, "conflict", "The request conflicts with existing data.")

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # A failed connect (statement is None) or a connection lost mid-query: the database is
        # down or restarting. The pool pre-pings, so the API recovers once it is back.
        if exc.connection_invalidated or exc.statement is None:
            log.warning("database_unavailable", error=str(exc.orig)[:200])
            return _unavailable("database_unavailable", "The database")
        log.exception("database_error")
        return error_response(500, "internal_error", "An internal error occurred.")

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_: Request, exc: PoolTimeout) -> JSONResponse:
        # Every pooled connection stayed busy for DB_POOL_TIMEOUT: the request waited its
        # bounded time; the client retries shortly rather than seeing a 500.
        log.warning("database_pool_exhausted")
        return error_response(
            503,
            "database_busy",
            "The server is busy; try again shortly.",
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(OSError)
    async def _socket_error(_: Request, exc: OSError) -> JSONResponse:
        # asyncpg raises plain OSErrors (refused, socket file missing) while a server restarts.
        log.warning("dependency_unavailable", error=repr(exc)[:200])
        return _unavailable("dependency_unavailable", "A backing service")


def _unavailable(code: str, what: str) -> JSONResponse:
    return error_response(
        503, code, f"{what} is unavailable; try again shortly.", headers={"Retry-After": "2"}
    )
