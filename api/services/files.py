"""File use cases: streaming upload, listing, access-checked and signed downloads, deletion.

Who may read a file: its owner, admins, and the owner of the test the file is attached to
(`test_id`). Everyone else gets 404, exactly as for a file that does not exist. A signed link
(`?expires=…&signature=…`) is a capability: it needs no bearer token until it expires.
Only `clean` files are served (409 with the scan status otherwise).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import MAX_ID, Page, Principal
from api.multipart import StreamingForm, too_large
from common import exam_visibility as visibility
from common import files as files_common
from common import storage as blobs
from common.errors import Conflict, Forbidden, NotFound, Unprocessable, UnsupportedType
from common.jobs import BrokerUnavailable, Publisher, enqueue
from common.models import Exam, FileDeletion, StoredFile
from common.scanning import HEAD_SIZE
from common.settings import Settings
from common.signing import SignatureError, SignatureExpired, verify

log = structlog.get_logger(__name__)

SCAN_TASK = "files.scan"
FILE_FIELD = "file"
TEST_ID_FIELD = "test_id"
UPLOAD_FIELDS = {TEST_ID_FIELD: 20}  # the upload form's text fields: name -> maximum bytes
# An upload holds a thread for as long as its client takes to send the body; these threads are
# their own, so slow uploads never starve the default executor (password hashing, file reads).
# Uploads beyond this many per process wait for a thread before their body is read.
UPLOAD_THREADS = 32
_upload_executor = ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="upload")


@dataclass(frozen=True)
class FileLink:
    url: str
    expires_at: datetime


def _test_id_error(message: str, code: str = "validation_error") -> Unprocessable:
    return Unprocessable(
        f"test_id: {message}", code=code, details=[{"path": "test_id", "message": message}]
    )


def _parse_test_id(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise _test_id_error("must be a test id (a positive integer)")
    return int(text)


async def _check_test_context(session: AsyncSession, principal: Principal, test_id: int) -> None:
    """A file may be attached to a test its uploader can see (common.exam_visibility): admins
    any, instructors their own, students a published test open to them (no class, or theirs)."""
    found = await session.scalar(
        select(Exam.id).where(Exam.id == test_id, visibility.visible_clause(principal))
    )
    if found is None:
        raise _test_id_error("no such test", code="unknown_test")


async def upload(
    *,
    session: AsyncSession,
    publisher: Publisher,
    settings: Settings,
    storage: blobs.Storage,
    principal: Principal,
    form: StreamingForm,
    test_id: int | None,
) -> tuple[StoredFile, FileLink]:
    """Stream the file of `form` (api.multipart.stream_upload with `UPLOAD_FIELDS`) into
    storage, then record it and enqueue its scan in one transaction."""
    max_bytes = settings.upload_max_bytes
    if test_id is not None:
        await _check_test_context(session, principal, test_id)
    # Give the connection back to the pool while the body streams in (expire_on_commit=False).
    await session.commit()

    try:
        head, complete = await form.read_head(HEAD_SIZE)
    except blobs.TooLarge:
        raise too_large(max_bytes) from None
    if not head:
        raise Unprocessable(
            "file: the file is empty",
            code="empty_file",
            details=[{"path": FILE_FIELD, "message": "empty"}],
        )
    assert form.file is not None  # read_head raises otherwise
    try:
        # Always the same window, however the body happened to be chunked.
        stored_type = files_common.decide_upload_type(
            head[:HEAD_SIZE],
            complete=complete and len(head) <= HEAD_SIZE,
            claimed=form.file.content_type,
            allowed=frozenset(settings.upload_allowed_types),
        )
    except files_common.TypeRefused as exc:
        raise UnsupportedType(
            str(exc),
            code="file_type_not_allowed",
            details={
                "detected": exc.detected,
                "claimed": exc.claimed,
                "allowed": sorted(settings.upload_allowed_types),
            },
        ) from None

    async def chunks() -> AsyncGenerator[bytes, None]:
        yield head
        async for chunk in form.file_chunks():
            yield chunk

    key = blobs.new_key()
    body_chunks = chunks()
    try:
        stored = await blobs.write_async(
            storage,
            key,
            body_chunks,
            max_size=max_bytes,
            content_type=stored_type,
            executor=_upload_executor,
        )
    except blobs.TooLarge:
        raise too_large(max_bytes) from None
    finally:
        with suppress(RuntimeError):  # still running if the write was cancelled mid-stream
            await body_chunks.aclose()

    row: StoredFile | None = None
    try:
        if (field := form.fields.get(TEST_ID_FIELD)) is not None:
            form_test_id = _parse_test_id(field)
            if test_id is not None and form_test_id != test_id:
                raise _test_id_error("the query and the form disagree")
            if test_id is None:
                await _check_test_context(session, principal, form_test_id)
            test_id = form_test_id
        row = StoredFile(
            key=key,
            owner_id=principal.id,
            test_id=test_id,
            original_name=files_common.sanitize_filename(form.file.filename),
            size=stored.size,
            content_type=stored_type,
            sha256=stored.sha256,
            scan_status="pending",
        )
        session.add(row)
        # One transaction: the row and its scan job commit together.
        row.scan_job = await enqueue(
            session,
            publisher,
            kind=SCAN_TASK,
            owner_id=principal.id,
            params={"key": key},
            subject=f"file:{key}",
        )
        await session.commit()
    except BrokerUnavailable:
        # The row committed with a failed job: no scan would ever run, so undo the upload.
        await session.execute(delete(StoredFile).where(StoredFile.key == key))
        await session.commit()
        await _remove_blob(session, storage, key)
        raise
    except BaseException:
        await session.rollback()
        if row is None or not sa_inspect(row).has_identity:  # nothing refers to the blob
            await asyncio.to_thread(storage.delete, key)
        raise
    log.info("files.uploaded", key=key, size=stored.size, content_type=stored_type)
    return row, link_for(settings, storage, row)


def link_for(settings: Settings, storage: blobs.Storage, row: StoredFile) -> FileLink:
    """S3 presigned GET for a clean file on S3; otherwise this API's HMAC-signed link, which
    checks the scan status on every use (a presigned URL would bypass it)."""
    now = time.time()
    expires_at = datetime.fromtimestamp(int(now) + settings.download_url_seconds, UTC)
    url = None
    if row.scan_status == "clean":
        url = storage.signed_url(
            row.key,
            settings.download_url_seconds,
            download_name=row.original_name,
            content_type=row.content_type,
        )
    return FileLink(url or files_common.api_download_url(settings, row.key, now=now), expires_at)


async def list_files(
    *,
    session: AsyncSession,
    principal: Principal,
    page: Page,
    test_id: int | None,
    scan_status: str | None,
) -> tuple[Sequence[StoredFile], int]:
    """Own files (admins: everyone's). With test_id, the files attached to that test: all of
    them for its owner and admins, one's own for anyone else."""
    query = select(StoredFile)
    if test_id is not None:
        query = query.where(StoredFile.test_id == test_id)
        owner = await session.scalar(select(Exam.owner_id).where(Exam.id == test_id))
        if not visibility.manages(principal, owner):
            query = query.where(StoredFile.owner_id == principal.id)
    elif not principal.is_admin:
        query = query.where(StoredFile.owner_id == principal.id)
    if scan_status is not None:
        query = query.where(StoredFile.scan_status == scan_status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    return rows.all(), total or 0


async def _may_read(session: AsyncSession, principal: Principal, row: StoredFile) -> bool:
    if principal.is_admin or row.owner_id == principal.id:
        return True
    if row.test_id is None:
        return False
    owner = await session.scalar(select(Exam.owner_id).where(Exam.id == row.test_id))
    return visibility.manages(principal, owner)


async def get_file(*, session: AsyncSession, principal: Principal, key: str) -> StoredFile:
    row = await session.scalar(select(StoredFile).where(StoredFile.key == key))
    if row is None or not await _may_read(session, principal, row):
        raise NotFound("file not found")
    return row


async def get_file_by_link(
    *, session: AsyncSession, settings: Settings, key: str, expires: str, signature: str
) -> StoredFile:
    """The file named by a signed link: 403 if the link is forged, altered or expired."""
    try:
        verify(key, expires, signature, files_common.signing_secret(settings))
    except SignatureExpired:
        raise Forbidden("this download link has expired", code="link_expired") from None
    except SignatureError:
        raise Forbidden("this download link is not valid", code="invalid_signature") from None
    row = await session.scalar(select(StoredFile).where(StoredFile.key == key))
    if row is None:
        raise NotFound("file not found")
    return row


def ensure_clean(row: StoredFile) -> None:
    if row.scan_status != "clean":
        message = {
            "pending": "the file is still being scanned; try again shortly",
            "rejected": "the file was rejected by the scan and cannot be downloaded",
        }.get(row.scan_status, "the file cannot be downloaded")
        raise Conflict(
            message,
            code=f"file_{row.scan_status}",
            details={"scan_status": row.scan_status, "scan_reason": row.scan_reason},
            retry_after=2 if row.scan_status == "pending" else None,
        )


async def open_blob(storage: blobs.Storage, row: StoredFile) -> Iterator[bytes]:
    try:
        return await asyncio.to_thread(storage.read, row.key)
    except (blobs.NotFound, blobs.InvalidKey) as exc:  # InvalidKey: a symlink out of the root
        log.error("files.blob_unreadable", key=row.key, error=type(exc).__name__)
        raise NotFound("file not found") from None


async def delete_file(
    *, session: AsyncSession, storage: blobs.Storage, principal: Principal, key: str
) -> None:
    """Owner or admin. The row goes first (its trigger queues the blob), then the blob."""
    row = await session.scalar(select(StoredFile).where(StoredFile.key == key).with_for_update())
    if row is None or not (principal.is_admin or row.owner_id == principal.id):
        raise NotFound("file not found")
    await session.delete(row)
    await session.commit()
    await _remove_blob(session, storage, key)


async def _remove_blob(session: AsyncSession, storage: blobs.Storage, key: str) -> None:
    """Delete a queued blob now and drop its tombstone; on failure the tombstone stays for
    the next purge (common.files.purge_deleted_blobs)."""
    try:
        await asyncio.to_thread(storage.delete, key)
    except Exception as exc:
        log.warning("files.blob_delete_failed", key=key, error=repr(exc)[:200])
        return
    await session.execute(delete(FileDeletion).where(FileDeletion.key == key))
    await session.commit()
