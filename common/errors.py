"""Domain errors: what went wrong with a use case, said without any transport in mind.

Services (the API's use cases, common's rules, the worker's tasks) raise these. Each layer maps
them its own way, in one place: the API to its HTTP error body by kind (api/errors.py), the
worker to a failed job with the error's code (worker/jobs.run_job). A kind says what sort of
refusal it is; `code` is the stable machine-readable name clients and job records carry.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused or impossible use case: `code`, a human `message`, optional `details` (any
    JSON value), and `retry_after` (seconds) when trying again later may succeed."""

    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.details = details
        self.retry_after = retry_after


class BadRequest(DomainError):
    """The request cannot be understood at all (e.g. a malformed body)."""

    code = "bad_request"


class Unauthorized(DomainError):
    """The caller is not authenticated (no, bad, expired or revoked credentials)."""

    code = "unauthorized"

    def __init__(self, message: str = "Not authenticated", **kw: Any) -> None:
        super().__init__(message, **kw)


class Forbidden(DomainError):
    """The caller is known but may not do this."""

    code = "forbidden"


class NotFound(DomainError):
    """No such thing, or one the caller may not know exists."""

    code = "not_found"


class Conflict(DomainError):
    """The request clashes with the current state (a duplicate, a closed test, a lock held)."""

    code = "conflict"


class TooLarge(DomainError):
    """What was sent is over a size limit."""

    code = "payload_too_large"


class UnsupportedType(DomainError):
    """What was sent is of a type this use case does not take."""

    code = "unsupported_media_type"


class Unprocessable(DomainError):
    """Well-formed input whose values are wrong."""

    code = "validation_error"


class RateLimited(DomainError):
    """Too many attempts; `retry_after` says when to try again."""

    code = "rate_limited"


class Unavailable(DomainError):
    """A backing service (database, queue) cannot serve now; try again shortly."""

    code = "service_unavailable"
