"""Dependencies: the database session, the authenticated principal, route access rules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from api.resources import Resources
from common.errors import Forbidden, Unauthorized
from common.models import AuthSession, User
from common.security import InvalidToken, decode_token, scopes_for
from common.settings import Settings

log = structlog.get_logger(__name__)

SCOPE_DESCRIPTIONS = {
    "me": "Read and update your own account",
    "users:read": "List and read users (instructors: students only)",
    "users:write": "Create, update and delete any user",
    "tests:write": "Author tests and classes",
    "tests:take": "Take tests",
    "attendance:write": "Record attendance for your tests",
    "attendance:self": "Check in and read your own attendance",
    "files:own": "Upload and download your files",
    "faces:self": "Enroll your own face",
    "faces:review": "Enroll, approve and reject the faces of your classes' students",
    "grading": "Start bulk grading and read statistics",
    "admin": "Administer the system",
}

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/login", scopes=SCOPE_DESCRIPTIONS, auto_error=False
)


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_settings_dep(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_db(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    session = resources.db.session()
    try:
        yield session
    finally:
        try:
            await session.close()
        except (DBAPIError, OSError) as exc:
            # The connection died (database restart) after the answer was made: the pool
            # discards it; raising here would only break a response already sent.
            log.warning("db_session_close_failed", error=type(exc).__name__)


DbSession = Annotated[AsyncSession, Depends(get_db)]


@dataclass(frozen=True)
class Principal:
    user: User
    session_id: uuid.UUID
    scopes: frozenset[str]

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


async def get_principal(
    security_scopes: SecurityScopes,
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    if not token:
        raise Unauthorized()
    principal = await authenticate(session, resources, token)
    # Scopes come from the current role, so a demotion takes effect before the token expires.
    missing = [s for s in security_scopes.scopes if s not in principal.scopes]
    if missing:
        raise Forbidden("you are not allowed to do this", details={"missing_scopes": missing})
    request.state.user_id = principal.id
    return principal


async def authenticate(session: AsyncSession, resources: Resources, token: str) -> Principal:
    """The principal behind an access token, or Unauthorized (bad, expired or revoked). The
    common case reads no row: the process's principal cache (api.principal_cache), emptied at
    once by every commit that touches the user or the session, on every process."""
    try:
        claims = decode_token(resources.settings, token, expected="access")
    except InvalidToken as exc:
        raise Unauthorized(str(exc), code="invalid_token") from exc
    cache = resources.principal_cache
    user = cache.get(claims.sid, claims.sub)
    if user is None:
        generation = cache.generation
        row = (
            await session.execute(
                select(User, AuthSession.revoked_at)
                .join(AuthSession, AuthSession.user_id == User.id)
                .where(AuthSession.id == claims.sid, User.id == claims.sub)
            )
        ).one_or_none()
        if row is None or row.revoked_at is not None or not row.User.is_active:
            raise Unauthorized("session revoked or user no longer exists", code="invalid_token")
        user = row.User
        cache.put(claims.sid, user, generation)
    return Principal(user=user, session_id=claims.sid, scopes=scopes_for(user.role))


def scoped(*scopes: str) -> Any:
    """`user: Annotated[Principal, scoped("tests:write")]`: the route's access rule, declared in
    its signature (and shown in the OpenAPI security requirements)."""
    return Security(get_principal, scopes=list(scopes))


CurrentUser = Annotated[Principal, Security(get_principal, scopes=["me"])]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(get_page)]

MAX_ID = 2_147_483_647
# Ids are PostgreSQL integers: bound them so an oversized id is a 422, not a database error.
UserIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="User id")]
TestIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Test id")]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
