"""What invalidates the API's principal cache: the one place that decides it.

The API caches (session, user) per process for a few seconds (api.principal_cache). Any
committed change to a `users` or `auth_sessions` row must drop the matching entries on every
API process at once: logout, refresh-reuse revocation, revoke-all on a password change,
deactivation, role change, deletion, profile edits. Rather than each use case remembering to
say so, SQLAlchemy session hooks watch every transaction, in the API and in any other process
that writes through the ORM (the worker, the CLI, tests):

- a flushed User or AuthSession object (dirty or deleted) names `user:<id>`;
- a bulk UPDATE/DELETE on those tables names the `users.id`, `auth_sessions.user_id` or
  `auth_sessions.id` it filters on by equality, or `*` (everything) when it filters otherwise.

On commit the keys are handed to the local listeners (this process's caches, at once) and,
for a sync session, published on Redis for the other processes; the API's async sessions
publish from `AsyncSession.commit` (api.principal_cache) so the answer leaves after the
message. A rollback forgets them. Raw SQL that bypasses the ORM is not seen: the cache's TTL
(PRINCIPAL_CACHE_SECONDS) bounds the staleness then, as it does for a lost message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from common.models import AuthSession, User

log = structlog.get_logger(__name__)

# Not under REDIS_KEY_PREFIX: a message from another deployment on the same Redis can only drop
# entries (an extra database read), never keep one.
CHANNEL = "mcq:principal-invalidations"
EVERYTHING = "*"
_PENDING = "principal_invalidation_pending"
_COMMITTED = "principal_invalidation_committed"
ASYNC_PUBLISHER = "principal_invalidation_async"  # session.info flag: the API publishes itself

_listeners: list[Callable[[set[str]], None]] = []
_sync_redis: Any = None


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


def session_key(session_id: uuid.UUID) -> str:
    return f"session:{session_id}"


def add_listener(listener: Callable[[set[str]], None]) -> Callable[[], None]:
    """Call `listener(keys)` on every commit in this process that invalidates; returns its
    removal."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def encode(keys: Iterable[str]) -> str:
    return " ".join(sorted(keys))


def decode(message: bytes | str) -> set[str]:
    text = message.decode() if isinstance(message, bytes) else message
    return set(text.split())


def _pending(session: Session) -> set[str]:
    keys: set[str] = session.info.setdefault(_PENDING, set())
    return keys


def _keys_of_where(statement: Any) -> set[str]:
    """The keys a bulk UPDATE/DELETE touches: every equality on an identifying column in its
    top-level AND, else everything."""
    where = getattr(statement, "whereclause", None)
    clauses: list[Any] = []
    if isinstance(where, BooleanClauseList) and where.operator is operators.and_:
        clauses = list(where.clauses)
    elif where is not None:
        clauses = [where]
    identifying: dict[Any, Callable[[Any], str]] = {
        User.__table__.c.id: user_key,
        AuthSession.__table__.c.user_id: user_key,
        AuthSession.__table__.c.id: session_key,
    }
    for clause in clauses:
        if (
            isinstance(clause, BinaryExpression)
            and clause.operator is operators.eq
            and isinstance(clause.right, BindParameter)
            and clause.right.value is not None
        ):
            for column, key in identifying.items():
                if clause.left.compare(column):
                    return {key(clause.right.value)}
    return {EVERYTHING}


@event.listens_for(Session, "do_orm_execute")
def _bulk_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ in (User, AuthSession):
        _pending(state.session).update(_keys_of_where(state.statement))


@event.listens_for(Session, "after_flush")
def _flushed_rows(session: Session, _: Any) -> None:
    keys = set()
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, User) and obj.id is not None:
            keys.add(user_key(obj.id))
        elif isinstance(obj, AuthSession) and obj.user_id is not None:
            keys.add(user_key(obj.user_id))
    if keys:
        _pending(session).update(keys)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    keys = session.info.pop(_PENDING, None)
    if not keys:
        return
    for listener in list(_listeners):
        listener(keys)
    if session.info.get(ASYNC_PUBLISHER):
        session.info.setdefault(_COMMITTED, set()).update(keys)
    else:
        publish_sync(keys)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def take_committed(session: Session) -> set[str]:
    """Keys committed by an async-publishing session and not yet published."""
    keys: set[str] = session.info.pop(_COMMITTED, set())
    return keys


def publish_sync(keys: set[str]) -> None:
    """Publish from a sync process (worker, CLI, a test's session). Redis down: logged; the
    other processes' TTL bounds the staleness."""
    global _sync_redis
    try:
        if _sync_redis is None:
            import redis

            from common.settings import get_settings

            url = get_settings().redis_url
            if not url:
                return
            _sync_redis = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        _sync_redis.publish(CHANNEL, encode(keys))
    except Exception as exc:
        log.warning("principal_invalidation.publish_failed", error=type(exc).__name__)
