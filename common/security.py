"""Password hashing and JWTs. Pure functions of their inputs and the settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from common.settings import Settings, get_settings

TokenType = Literal["access", "refresh"]

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "student": frozenset({"me", "tests:take", "attendance:self", "files:own", "faces:self"}),
    "instructor": frozenset(
        {
            "me",
            "users:read",
            "tests:write",
            "attendance:write",
            "files:own",
            "faces:review",
            "grading",
        }
    ),
    "admin": frozenset(
        {
            "me",
            "users:read",
            "users:write",
            "tests:write",
            "tests:take",
            "attendance:write",
            "attendance:self",
            "files:own",
            "faces:self",
            "faces:review",
            "grading",
            "admin",
        }
    ),
}


@lru_cache
def _hasher(memory_kib: int, time_cost: int, parallelism: int) -> PasswordHash:
    # Argon2id for new hashes; bcrypt hashes (from an older system) still verify, and are
    # replaced by Argon2id at the next successful login (verify_and_update).
    argon2 = Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
    return PasswordHash((argon2, BcryptHasher()))


def password_hasher(settings: Settings | None = None) -> PasswordHash:
    """The hasher for the configured cost (PASSWORD_ARGON2_*; OWASP's 19 MiB, 2 passes, 1 lane)."""
    s = settings or get_settings()
    return _hasher(
        s.password_argon2_memory_kib, s.password_argon2_time_cost, s.password_argon2_lanes
    )


@lru_cache
def _dummy_hash(hasher: PasswordHash) -> str:
    return hasher.hash("dummy password that nobody has")


def dummy_hash(settings: Settings | None = None) -> str:
    """A hash to verify against when the user does not exist, so timing reveals nothing."""
    return _dummy_hash(password_hasher(settings))


def hash_password(password: str, settings: Settings | None = None) -> str:
    return password_hasher(settings).hash(password)


def verify_password(
    password: str, password_hash: str | None, settings: Settings | None = None
) -> bool:
    return verify_and_update(password, password_hash, settings)[0]


def verify_and_update(
    password: str, password_hash: str | None, settings: Settings | None = None
) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one was made with another algorithm or cost)."""
    hasher = password_hasher(settings)
    if password_hash is None:
        hasher.verify(password, dummy_hash(settings))
        return False, None
    return hasher.verify_and_update(password, password_hash)


@dataclass(frozen=True)
class TokenClaims:
    sub: int
    role: str
    scopes: frozenset[str]
    sid: uuid.UUID
    jti: uuid.UUID
    typ: TokenType
    exp: datetime


class InvalidToken(Exception):
    pass


def scopes_for(role: str) -> frozenset[str]:
    return ROLE_SCOPES.get(role, frozenset())


def encode_token(
    settings: Settings,
    *,
    user_id: int,
    role: str,
    session_id: uuid.UUID,
    typ: TokenType,
    jti: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[str, TokenClaims]:
    now = now or datetime.now(UTC)
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if typ == "access"
        else timedelta(days=settings.refresh_token_days)
    )
    claims = TokenClaims(
        sub=user_id,
        role=role,
        scopes=scopes_for(role),
        sid=session_id,
        jti=jti or uuid.uuid4(),
        typ=typ,
        exp=now + lifetime,
    )
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "role": role,
        "scope": " ".join(sorted(claims.scopes)),
        "sid": str(session_id),
        "jti": str(claims.jti),
        "typ": typ,
        "iat": int(now.timestamp()),
        "exp": int(claims.exp.timestamp()),
    }
    token = jwt.encode(
        payload, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm
    )
    return token, claims


def decode_token(settings: Settings, token: str, *, expected: TokenType) -> TokenClaims:
    """Verify signature, expiry and type. `algorithms` is pinned, so `alg: none` never passes."""
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            options={"require": ["sub", "sid", "jti", "typ", "exp"]},
        )
        if payload["typ"] != expected:
            raise InvalidToken(f"a {payload['typ']} token cannot be used here")
        return TokenClaims(
            sub=int(payload["sub"]),
            role=str(payload.get("role", "")),
            scopes=frozenset(str(payload.get("scope", "")).split()),
            sid=uuid.UUID(payload["sid"]),
            jti=uuid.UUID(payload["jti"]),
            typ=expected,
            exp=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise InvalidToken("invalid token") from exc
