from __future__ import annotations

import pytest

from common.signing import (
    SignatureError,
    SignatureExpired,
    SignatureInvalid,
    sign,
    signed_params,
    verify,
)

SECRET = "s3cr3t-for-tests-only-0123456789abcdef"
KEY = "uploads/0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000


def test_valid_link() -> None:
    sig = sign(KEY, NOW + 60, SECRET)
    assert verify(KEY, NOW + 60, sig, SECRET, now=NOW) is None
    assert verify(KEY, str(NOW + 60), sig, SECRET.encode(), now=NOW) is None  # str / bytes
    assert not set(sig) & set("=/+")  # URL-safe as is


def test_signed_params_round_trip() -> None:
    params = signed_params(KEY, 300, SECRET, now=NOW)
    assert params["expires"] == str(NOW + 300)
    verify(KEY, params["expires"], params["signature"], SECRET, now=NOW + 299)


def test_expired() -> None:
    sig = sign(KEY, NOW, SECRET)
    with pytest.raises(SignatureExpired) as info:
        verify(KEY, NOW, sig, SECRET, now=NOW)  # expiry instant itself is expired
    assert info.value.code == "expired"
    with pytest.raises(SignatureExpired):
        verify(KEY, NOW, sig, SECRET, now=NOW + 3600)


def test_tampered_signature() -> None:
    sig = sign(KEY, NOW + 60, SECRET)
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    for bad in (flipped, sig[:-1], sig + "A", "", "\u00e9" * 43):
        with pytest.raises(SignatureInvalid) as info:
            verify(KEY, NOW + 60, bad, SECRET, now=NOW)
        assert info.value.code == "invalid_signature"


def test_tampered_key() -> None:
    sig = sign(KEY, NOW + 60, SECRET)
    for other in (KEY + "x", KEY[:-1], "uploads/other", KEY.upper()):
        with pytest.raises(SignatureInvalid):
            verify(other, NOW + 60, sig, SECRET, now=NOW)


def test_tampered_expiry_is_invalid_not_expired() -> None:
    sig = sign(KEY, NOW - 10, SECRET)  # an old, expired link...
    with pytest.raises(SignatureInvalid):  # ...cannot be revived by editing its expiry
        verify(KEY, NOW + 10**6, sig, SECRET, now=NOW)
    for spelling in (f"+{NOW - 10}", f" {NOW - 10}", f"{NOW - 10:_}", "1e9", "abc", "", "-1"):
        with pytest.raises(SignatureInvalid):
            verify(KEY, spelling, sig, SECRET, now=NOW)


def test_other_secret_is_invalid() -> None:
    sig = sign(KEY, NOW + 60, "another secret entirely, also long enough")
    with pytest.raises(SignatureInvalid):
        verify(KEY, NOW + 60, sig, SECRET, now=NOW)


def test_both_errors_share_a_base_class() -> None:
    assert issubclass(SignatureExpired, SignatureError)
    assert issubclass(SignatureInvalid, SignatureError)
    assert not issubclass(SignatureExpired, SignatureInvalid)


def test_empty_secret_refused() -> None:
    with pytest.raises(ValueError):
        sign(KEY, NOW, "")
