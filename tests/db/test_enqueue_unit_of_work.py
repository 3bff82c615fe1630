"""`common.jobs.enqueue` joins its caller's transaction (one unit of work per use case) and the
task is published only after that transaction commits, on a real PostgreSQL with the API's own
session class (common.db.AsyncDatabase). The publisher here records what reaches the broker;
the broker itself is exercised over HTTP (tests/faults/test_redis_outage.py, tests/worker).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from common.db import AsyncDatabase
from common.jobs import BrokerUnavailable, enqueue
from common.models import Job, User


class RecordingPublisher:
    """Records each publish together with what another connection sees at that moment."""

    def __init__(self, sync_db, *, fail: bool = False) -> None:
        self.sync_db = sync_db
        self.fail = fail
        self.published: list[tuple[str, uuid.UUID, str | None, bool]] = []

    def publish(self, task_name: str, job_id: uuid.UUID) -> None:
        with self.sync_db.sessionmaker() as other:
            status = other.scalar(select(Job.status).where(Job.id == job_id))
            user_there = other.scalar(select(User.id).where(User.username == "uow")) is not None
        self.published.append((task_name, job_id, status, user_there))
        if self.fail:
            raise ConnectionError("broker down")


@pytest.fixture
async def database(settings, db) -> AsyncIterator[AsyncDatabase]:
    database = AsyncDatabase(settings)
    yield database
    await database.dispose()


def _job_status(db, job_id: uuid.UUID) -> str | None:
    db.expire_all()
    return db.scalar(select(Job.status).where(Job.id == job_id))


async def test_enqueue_leaves_the_transaction_to_its_caller(database, sync_db, db):
    publisher = RecordingPublisher(sync_db)
    async with database.session() as session:
        session.add(User(username="uow", password_hash="x", role="student"))
        job = await enqueue(session, publisher, kind="diagnostics.echo", owner_id=None)
        # Nothing committed, nothing published: the caller's transaction is still open.
        assert session.in_transaction()
        assert _job_status(db, job.id) is None and publisher.published == []
        await session.commit()
    # Published once, after the commit that made the job and the caller's write visible.
    assert publisher.published == [("diagnostics.echo", job.id, "queued", True)]
    assert _job_status(db, job.id) == "queued"


async def test_a_rolled_back_use_case_leaves_no_job_and_publishes_nothing(database, sync_db, db):
    publisher = RecordingPublisher(sync_db)
    async with database.session() as session:
        job = await enqueue(session, publisher, kind="diagnostics.echo", owner_id=None)
        await session.rollback()  # e.g. the use case failed after enqueueing
        await session.commit()  # a later commit on the same session publishes nothing either
    assert publisher.published == []
    assert _job_status(db, job.id) is None


async def test_a_failed_publish_fails_the_job_and_the_commit_raises(database, sync_db, db):
    publisher = RecordingPublisher(sync_db, fail=True)
    async with database.session() as session:
        job = await enqueue(session, publisher, kind="diagnostics.echo", owner_id=None)
        with pytest.raises(BrokerUnavailable) as raised:
            await session.commit()
        assert raised.value.job_id == job.id and raised.value.code == "queue_unavailable"
        # The session is whole again: it reads, and a following commit raises nothing.
        assert await session.scalar(select(Job.status).where(Job.id == job.id)) == "failed"
        await session.commit()
    assert _job_status(db, job.id) == "failed"
    assert database.engine.pool.checkedout() == 0  # no connection left behind
