"""The file scan job: vet an uploaded blob and mark it `clean` or `rejected`.

Checks (common.scanning.scan): the content type stored at upload is borne out by the whole
file, images decode fully under the pixel limit, and ClamAV finds nothing (when CLAMD_URL is
set and VIRUS_SCAN is not off; `virus_scan` records what ClamAV said, or `skipped`). A
rejection is a verdict, not a failure: the job succeeds with it as its result. clamd or the
storage being unreachable is transient: the job retries with backoff and the file stays
`pending` (never served). After each scan, blobs of deleted rows are purged
(common.files.purge_deleted_blobs).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime

import structlog
from sqlalchemy import select, update

from common import files as files_common
from common.models import StoredFile
from common.scanning import ScanError, ScannerUnavailable, scan
from common.settings import get_settings
from common.storage import NotFound, Storage
from worker.app import app
from worker.jobs import JobContext, JobFailed, run_job
from worker.runtime import db

log = structlog.get_logger(__name__)

SPOOL_BYTES = 1024 * 1024  # larger blobs are spooled to a temporary file, not held in memory
PURGE_BATCH = 100


class DependencyDown(ConnectionError):
    """clamd or the blob store is unreachable: worker.jobs retries ConnectionErrors."""


def _storage_unavailable(exc: Exception) -> bool:
    """Network trouble reaching S3 (botocore) or a local disk I/O error, as opposed to bad
    input. botocore is imported only when it is already loaded (S3 in use)."""
    import sys

    if isinstance(exc, OSError):
        return True
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return False
    transient = (
        botocore.EndpointConnectionError,
        botocore.ConnectTimeoutError,
        botocore.ReadTimeoutError,
        botocore.ConnectionClosedError,
    )
    if isinstance(exc, transient):
        return True
    if isinstance(exc, botocore.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status) >= 500
    return False


def _scan(ctx: JobContext) -> None:
    key = str(ctx.params.get("key", ""))
    settings = get_settings()
    storage = files_common.get_storage(settings)
    with db().transaction() as session:
        row = session.scalar(select(StoredFile).where(StoredFile.key == key))
        if row is None:  # deleted before its scan ran: nothing to do
            ctx.set_result({"key": key, "deleted": True})
            return
        if row.scan_status != "pending":  # scanned already (e.g. by a redelivered message)
            ctx.set_result({"key": key, "scan_status": row.scan_status})
            return
        declared = row.content_type
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        try:
            for chunk in storage.read(key):
                spool.write(chunk)
        except NotFound:
            with db().transaction() as session:
                gone = session.scalar(select(StoredFile.id).where(StoredFile.key == key)) is None
            if gone:
                ctx.set_result({"key": key, "deleted": True})
                return
            raise JobFailed("blob_missing", "The stored bytes of this file are missing.") from None
        except Exception as exc:
            if _storage_unavailable(exc):
                raise DependencyDown(f"storage unavailable: {exc!r}"[:300]) from exc
            raise
        try:
            verdict = scan(
                spool,
                declared_type=declared,
                clamd=files_common.clamd_client(settings),
                policy=files_common.scan_policy(settings),
            )
        except ScannerUnavailable as exc:
            raise DependencyDown(str(exc)) from exc
        except ScanError as exc:  # clamd refused the file (its limits): no verdict possible
            raise JobFailed(exc.code, str(exc)[:300]) from exc

    result = {
        "key": key,
        "scan_status": verdict.status,
        "content_type": verdict.content_type,
        "reason": verdict.reason,
        "virus_scan": verdict.virus_scan,
    }
    ctx.set_result(result)
    with ctx.finish() as session:
        session.execute(
            update(StoredFile)
            .where(StoredFile.key == key, StoredFile.scan_status == "pending")
            .values(
                scan_status=verdict.status,
                scan_reason=verdict.reason,
                scan_detail=verdict.detail[:500] or None,
                virus_scan=verdict.virus_scan,
                scanned_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    log.info(
        "files.scanned",
        key=key,
        status=verdict.status,
        reason=verdict.reason,
        virus_scan=verdict.virus_scan,
    )


def _purge(storage: Storage) -> None:
    try:
        with db().transaction() as session:
            removed = files_common.purge_deleted_blobs(session, storage, limit=PURGE_BATCH)
        if removed:
            log.info("files.purged", count=removed)
    except Exception as exc:  # housekeeping must never fail the scan
        log.warning("files.purge_failed", error=repr(exc)[:200])


@app.task(name="files.scan", bind=True, acks_late=True)
def scan_file(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _scan)
    _purge(files_common.get_storage(get_settings()))
