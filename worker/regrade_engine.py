"""The regrade's engine: score every submission of a test with a key, write the changed ones.

    with scored_regrade(database, test_id, key, progress) as run:   # read and score
        with <the job's final transaction> as session:
            run.write(session, key_version)                          # apply the changes
        run.summary                                                  # counts and timings

Reading and scoring stream (id, answers, score, details) through server-side cursors in
batches, split into shards (ranges of submission ids) scored in parallel by forked processes,
one per CPU by default; only the rows whose grading changed are kept, as COPY text in temporary
files. `write` COPYs them into a temporary table and applies them with one `UPDATE ... FROM`,
in the caller's transaction, so a crash leaves no half-regraded test. Running it again finds
nothing to change and writes nothing. Leaving the `with` block stops any shard still running
and removes the files.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import orjson
import psycopg2
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.cache_invalidation import rows_written
from common.db import SyncDatabase
from common.grading import AnswerKey, AnswerValidationError, DetailsEncoder, Scorer
from common.models import Exam, Submission
from common.settings import get_settings

MAX_REPORTED_ERRORS = 1000

Progress = Callable[[int, int], None]  # (done, total); may raise to stop the regrade


@dataclass
class RegradeSummary:
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    processes: int = 1
    seconds: dict[str, float] = field(default_factory=dict)  # per phase

    def add(self, other: dict[str, Any]) -> None:
        """A shard's counts (as its process wrote them, asdict of a summary)."""
        self.changed += other["changed"]
        self.unchanged += other["unchanged"]
        self.failed += other["failed"]
        room = MAX_REPORTED_ERRORS - len(self.errors)
        self.errors.extend(other["errors"][: max(0, room)])


class ScoredRegrade:
    """A test scored with a key: the summary, and the changed rows waiting in `folder`."""

    def __init__(self, test_id: int, folder: str, summary: RegradeSummary) -> None:
        self.test_id = test_id
        self.summary = summary
        self._folder = folder
        self._scored_at = time.perf_counter()

    def write(self, session: Session, key_version: int) -> None:
        """Apply the changed rows (graded with `key_version`) and clear the test's
        needs_regrade, in `session`'s transaction."""
        if self.summary.changed:
            paths = [os.path.join(self._folder, f"{k}.copy") for k in range(self.summary.processes)]
            with contextlib.ExitStack() as files:
                parts = [files.enter_context(open(path)) for path in paths]
                self.summary.seconds.update(
                    _apply_changes(session, parts, self.test_id, key_version)
                )
            # Raw SQL the session hooks cannot see: say what it wrote.
            rows_written(session, "submissions", "update", test_id=self.test_id)
        session.execute(update(Exam).where(Exam.id == self.test_id).values(needs_regrade=False))
        self.summary.seconds["write"] = round(time.perf_counter() - self._scored_at, 3)


@contextlib.contextmanager
def scored_regrade(
    database: SyncDatabase, test_id: int, key: AnswerKey, progress: Progress
) -> Iterator[ScoredRegrade]:
    """Score every submission of the test with `key`, reporting progress; see the module."""
    settings = get_settings()
    batch = settings.regrade_batch_size
    with database.transaction() as session:
        # Instant through ix_submissions_test_id_id, unlike the count (a scan): the shards
        # start on these, and the count runs meanwhile for the progress figures.
        low, high = session.execute(
            select(func.min(Submission.id), func.max(Submission.id)).where(
                Submission.test_id == test_id
            )
        ).one()
    started = time.perf_counter()
    shards = _shards(high - low + 1 if low is not None else 0, settings.regrade_processes)
    ranges = _id_ranges(low or 0, high or 0, shards)
    folder = tempfile.mkdtemp(prefix="regrade-")
    url = database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    children: dict[int, int] = {}  # pid -> shard
    try:
        for shard in range(1, shards):
            children[_fork_shard(url, key, test_id, shard, ranges[shard], batch, folder)] = shard
        with database.transaction() as session:
            total: int = session.execute(
                select(func.count()).select_from(Submission).where(Submission.test_id == test_id)
            ).scalar_one()
        progress(0, total)
        done = 0

        def report(rows: int) -> None:
            # Shards advance at about the same pace; the children's share is estimated.
            nonlocal done
            done += rows
            progress(min(total, done * shards), total)

        conn = database.engine.raw_connection()
        try:
            with open(os.path.join(folder, "0.copy"), "w") as out:
                summary = _score_shard(conn, key, test_id, ranges[0], batch, out, report)
        finally:
            conn.close()
        for pid, shard in list(children.items()):
            _, status = os.waitpid(pid, 0)
            del children[pid]
            path = os.path.join(folder, f"{shard}.json")
            if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(path):
                raise RuntimeError(f"regrade shard {shard} failed")
            with open(path, "rb") as shard_summary:
                summary.add(orjson.loads(shard_summary.read()))
        progress(total, total)
        summary.processes = shards
        summary.seconds["read_and_score"] = round(time.perf_counter() - started, 3)
        yield ScoredRegrade(test_id, folder, summary)
    finally:
        for pid in children:  # canceled or failed midway: stop the other shards
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- shards


def _shards(rows: int, configured: int) -> int:
    """Processes for `rows` submissions (an upper bound: the span of their ids)."""
    if configured:
        return configured
    # Automatic: one per CPU, and forking pays off only for bigger tests.
    return max(1, min(os.cpu_count() or 1, 8, rows // 5000 + 1))


def _id_ranges(low: int, high: int, shards: int) -> list[tuple[int, int]]:
    """Split [low, high] into `shards` contiguous id ranges: each shard then reads its own
    part of the table (through the primary key) instead of all of it."""
    span = (high - low + 1 + shards - 1) // shards or 1
    return [(low + k * span, min(high, low + (k + 1) * span - 1)) for k in range(shards)]


def _copy_escape(text: str) -> str:
    # COPY's text format: backslash is the escape character; tabs and newlines never occur in
    # orjson output outside strings, and inside strings they are already escaped as \t, \n.
    return text.replace("\\", "\\\\")


def _score_shard(
    conn: Any,
    key: AnswerKey,
    test_id: int,
    ids: tuple[int, int],
    batch: int,
    out: TextIO,
    on_batch: Callable[[int], None] | None = None,
) -> RegradeSummary:
    """Score one shard (submission ids from ids[0] to ids[1], inclusive) of a test; write the
    rows whose grading changed to `out` as COPY text (id, score, details)."""
    summary = RegradeSummary()
    loads, encode, write = orjson.loads, DetailsEncoder(key).encode, out.write
    grade = Scorer(key).score_json
    # The loop allocates nothing that outlives a row except the COPY text: the cyclic
    # collector would only rescan the worker's heap again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # A named (server-side) cursor streams the rows instead of loading them all.
        cursor: Any = conn.cursor(name=f"regrade_{uuid.uuid4().hex}")
        cursor.itersize = batch
        cursor.execute(
            "SELECT id, answers::text, score, details::text FROM submissions"
            " WHERE test_id = %s AND id BETWEEN %s AND %s",
            (test_id, *ids),
        )
        while rows := cursor.fetchmany(batch):
            for submission_id, answers_text, old_score, details_text in rows:
                try:
                    result = grade(answers_text)
                except (AnswerValidationError, ValueError, TypeError, AttributeError) as exc:
                    summary.failed += 1
                    if len(summary.errors) < MAX_REPORTED_ERRORS:
                        summary.errors.append(
                            {"submission_id": submission_id, "reason": str(exc)[:200]}
                        )
                    continue
                details = encode(result)
                # Every writer stores details_json's exact text, so equal text is the common
                # unchanged case; rows written otherwise are compared by value.
                if result.score == old_score and (
                    details == details_text or loads(details) == loads(details_text)
                ):
                    summary.unchanged += 1
                    continue
                summary.changed += 1
                write(f"{submission_id}\t{result.score!r}\t{_copy_escape(details)}\n")
            if on_batch is not None:
                on_batch(len(rows))
        cursor.close()
        conn.rollback()
    finally:
        if gc_was_enabled:
            gc.enable()
    return summary


def _die_with_parent() -> None:
    """Linux: SIGKILL this process if its parent dies (a worker killed at its hard time
    limit must not leave shards running)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _fork_shard(
    url: str,
    key: AnswerKey,
    test_id: int,
    shard: int,
    ids: tuple[int, int],
    batch: int,
    folder: str,
) -> int:
    """Score a shard in a forked process (the machine's other cores); its COPY text and
    summary land in `folder`. The child opens its own connection and leaves with os._exit, so
    it never touches (or closes) the sockets it inherited."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _die_with_parent()
        conn = psycopg2.connect(url)
        with open(os.path.join(folder, f"{shard}.copy"), "w") as out:
            summary = _score_shard(conn, key, test_id, ids, batch, out)
        with open(os.path.join(folder, f"{shard}.json"), "wb") as summary_file:
            summary_file.write(orjson.dumps(asdict(summary)))
        conn.close()
        code = 0
    except BaseException:  # noqa: S110 - the parent reports the failed shard
        pass
    finally:
        os._exit(code)


# --------------------------------------------------------------------------- write


def _apply_changes(
    session: Session, changes: Sequence[TextIO], test_id: int, key_version: int
) -> dict[str, float]:
    """COPY the changed rows into a temporary table, then one UPDATE ... FROM. Returns the
    seconds each step took."""
    cursor = session.connection().connection.cursor()
    try:
        start = time.perf_counter()
        cursor.execute(
            "CREATE TEMP TABLE regrade_changes (id integer, score double precision, details json)"
            " ON COMMIT DROP"
        )
        for part in changes:
            cursor.copy_expert("COPY regrade_changes (id, score, details) FROM STDIN", part)
        cursor.execute("ANALYZE regrade_changes")
        copied = time.perf_counter()
        cursor.execute(
            "UPDATE submissions AS s SET previous_score = s.score, score = c.score,"
            " details = c.details, key_version = %s, graded_at = now(), updated_at = now()"
            " FROM regrade_changes AS c WHERE s.id = c.id AND s.test_id = %s",
            (key_version, test_id),
        )
        return {"copy": round(copied - start, 3), "update": round(time.perf_counter() - copied, 3)}
    finally:
        cursor.close()
