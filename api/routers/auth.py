from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.client_address import client_ip
from api.deps import DbSession, Principal, ResourcesDep, SettingsDep, scoped
from api.errors import TooManyRequests, error_responses
from api.openapi import model_ref
from api.schemas.auth import LoginRequest, RefreshRequest, TokenPair
from api.services import auth as service

router = APIRouter(prefix="/auth", tags=["auth"])

# Documented: the JSON body only, so generators produce one typed `login(body=LoginRequest)`.
# The OAuth2 password form (what the Authorize button in /docs sends) is also accepted and is
# described in the route's description: documenting both bodies makes generated clients break.
_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": model_ref(LoginRequest)}},
    }
}


async def _login_body(request: Request) -> LoginRequest:
    """JSON for API clients; the OAuth2 password form for the Authorize button in /docs."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            fields = {k: form.get(k) for k in ("username", "password")}
            return LoginRequest.model_validate(fields)
        return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "body is not valid JSON", "type": "json_invalid"}]
        ) from exc


@router.post(
    "/login",
    summary="Log in",
    description="Exchange a username and password for an access token (short-lived) and a "
    "refresh token. Send JSON `{username, password}`. The same route also accepts the OAuth2 "
    "password form (`application/x-www-form-urlencoded` with `username`, `password` and "
    "optionally `grant_type=password`), which is what the **Authorize** button sends.",
    response_model=TokenPair,
    responses=error_responses(401, 422, 429, 503),
    openapi_extra=_LOGIN_BODY,
)
async def login(
    request: Request, session: DbSession, settings: SettingsDep, resources: ResourcesDep
) -> TokenPair:
    body = await _login_body(request)
    address = client_ip(request.scope)
    decision = await resources.rate_limiter.hit("login_ip", address)
    if not decision.allowed:
        raise TooManyRequests(
            "too many login attempts; retry later",
            details={"limit": decision.name},
            headers=decision.headers(),
        )
    async with resources.login_guard.attempt(body.username, address):
        return await service.login(
            session=session,
            settings=settings,
            hashing=resources.password_workers,
            username=body.username,
            password=body.password,
        )


@router.post(
    "/refresh",
    summary="Rotate tokens",
    description="Exchange a refresh token for a new access and refresh token. Each refresh "
    "token works once: presenting a used one revokes the whole session.",
    response_model=TokenPair,
    responses=error_responses(401),
)
async def refresh(body: RefreshRequest, session: DbSession, settings: SettingsDep) -> TokenPair:
    return await service.refresh(
        session=session, settings=settings, refresh_token=body.refresh_token
    )


@router.post(
    "/logout",
    summary="Log out",
    description="Revoke the current session: its access and refresh tokens stop working.",
    status_code=204,
    responses=error_responses(401),
)
async def logout(session: DbSession, principal: Annotated[Principal, scoped("me")]) -> Response:
    await service.logout(session=session, session_id=principal.session_id)
    return Response(status_code=204)
