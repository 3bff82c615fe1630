"""Which cache keys a bulk statement on users / auth_sessions invalidates."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, or_, update

from common.models import AuthSession, User
from common.principal_invalidation import EVERYTHING, _keys_of_where, decode, encode


def test_equalities_on_identifying_columns_name_their_rows():
    sid = uuid.uuid4()
    logout = update(AuthSession).where(AuthSession.id == sid, AuthSession.revoked_at.is_(None))
    assert _keys_of_where(logout) == {f"session:{sid}"}
    revoke_all = update(AuthSession).where(AuthSession.user_id == 5)
    assert _keys_of_where(revoke_all) == {"user:5"}
    assert _keys_of_where(delete(User).where(User.id == 3)) == {"user:3"}


def test_anything_else_invalidates_everything():
    assert _keys_of_where(update(User).where(User.role == "student")) == {EVERYTHING}
    either = update(User).where(or_(User.id == 1, User.id == 2))
    assert _keys_of_where(either) == {EVERYTHING}
    assert _keys_of_where(update(User).values(is_active=False)) == {EVERYTHING}


def test_messages_round_trip():
    keys = {"user:1", "session:abc", EVERYTHING}
    assert decode(encode(keys).encode()) == keys
