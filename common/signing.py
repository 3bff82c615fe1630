"""HMAC-SHA256 signed, expiring download links for the local storage backend.

S3 presigns its own URLs; for files on local disk the API hands out
`/v1/files/download/{key}?expires=...&signature=...` and checks it with `verify` before
streaming the bytes. The signature covers the key and the expiry, so neither can be changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

_CONTEXT = b"mcq-download-v1"  # domain separation: these MACs are useless for anything else


class SignatureError(Exception):
    code = "invalid_signature"


class SignatureInvalid(SignatureError):
    """Signature, key or expiry was tampered with (or another secret signed it)."""

    code = "invalid_signature"


class SignatureExpired(SignatureError):
    """Authentic link whose expiry has passed."""

    code = "expired"


def _mac(key: str, expires_at: int, secret: str | bytes) -> bytes:
    secret_b = secret.encode() if isinstance(secret, str) else secret
    if not secret_b:
        raise ValueError("signing secret must not be empty")
    key_b = key.encode("utf-8")
    # Length-prefixed fields, so no (key, expiry) pair can be re-split into another.
    msg = b"%s\n%d:%s\n%d" % (_CONTEXT, len(key_b), key_b, expires_at)
    return hmac.new(secret_b, msg, hashlib.sha256).digest()


def sign(key: str, expires_at: int, secret: str | bytes) -> str:
    """URL-safe signature (base64, no padding) of key + absolute expiry (unix seconds)."""
    return base64.urlsafe_b64encode(_mac(key, int(expires_at), secret)).rstrip(b"=").decode()


def signed_params(
    key: str, expires_in: int, secret: str | bytes, now: float | None = None
) -> dict[str, str]:
    """Query parameters for a link valid `expires_in` seconds from now."""
    expires_at = int(time.time() if now is None else now) + int(expires_in)
    return {"expires": str(expires_at), "signature": sign(key, expires_at, secret)}


def verify(
    key: str,
    expires: int | str,
    signature: str,
    secret: str | bytes,
    now: float | None = None,
) -> None:
    """Return None if the link is valid; raise SignatureInvalid or SignatureExpired.

    The MAC is checked first (in constant time), so "expired" is only ever said of a link
    this server really issued; an edited expiry is "invalid", never "expired".
    """
    # Query strings arrive as str: accept plain digits only, so one link has one spelling.
    if isinstance(expires, str) and not (expires.isascii() and expires.isdigit()):
        raise SignatureInvalid("malformed expiry")
    try:
        expires_at = int(expires)
        given = signature.encode("ascii")
    except (TypeError, ValueError, AttributeError, UnicodeEncodeError):
        raise SignatureInvalid("malformed link") from None
    expected = sign(key, expires_at, secret).encode("ascii")
    if not hmac.compare_digest(expected, given):
        raise SignatureInvalid("bad signature")
    if (time.time() if now is None else now) >= expires_at:
        raise SignatureExpired("link expired")
