"""Uploaded files, as configured by the settings: shared by the API and the worker.

Builds the storage backend, the scan policy and the clamd client from `Settings`, signs the
API's download links, sanitizes client file names, and deletes the blobs of deleted rows
(`purge_deleted_blobs`; see common.models.files for the deletion outbox).

`python -m common.files purge` deletes every queued blob (for a cron job).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sys
import unicodedata
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.models.files import FileDeletion
from common.scanning import TEXT_TYPES, ClamdClient, ScanPolicy, normalize_type, sniff
from common.settings import Settings
from common.signing import signed_params
from common.storage import Storage, StorageConfig, make_storage

log = structlog.get_logger(__name__)

_SIGNING_LABEL = b"mcq-file-download-links-v1"
MAX_NAME_LENGTH = 255
FALLBACK_NAME = "upload"
# Keys this application generates: 128 random bits in hex (common.storage.new_key).
KEY_PATTERN = r"^[0-9a-f]{32}$"


def storage_config(settings: Settings) -> StorageConfig:
    root = settings.storage_local_root or Path(settings.var_dir) / "files"
    return StorageConfig(
        backend=settings.storage_backend,
        local_root=Path(root) if settings.storage_backend == "local" else None,
        s3_bucket=settings.s3_bucket,
        prefix=settings.storage_prefix,
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        presign_expiry=settings.download_url_seconds,
    )


@lru_cache(maxsize=16)
def _storage(config: StorageConfig) -> Storage:
    return make_storage(config)


def get_storage(settings: Settings) -> Storage:
    """The configured backend, built once per configuration and process (thread-safe to use)."""
    return _storage(storage_config(settings))


def signing_secret(settings: Settings) -> bytes:
    """FILE_SIGNING_SECRET, or a key derived from JWT_SECRET that signs nothing else."""
    if settings.file_signing_secret is not None and settings.file_signing_secret.get_secret_value():
        return settings.file_signing_secret.get_secret_value().encode()
    jwt_secret = settings.jwt_secret.get_secret_value().encode()
    return hmac.new(jwt_secret, _SIGNING_LABEL, hashlib.sha256).digest()


def api_download_url(settings: Settings, key: str, *, now: float | None = None) -> str:
    """`/v1/files/{key}?expires=…&signature=…`: works without a bearer token until it expires."""
    params = signed_params(key, settings.download_url_seconds, signing_secret(settings), now=now)
    base = settings.files_public_base_url.rstrip("/")
    return f"{base}/v1/files/{key}?{urlencode(params)}"


class TypeRefused(Exception):
    """The upload's content is not of an allowed type (or contradicts the client's claim)."""

    def __init__(self, message: str, *, detected: str | None, claimed: str | None) -> None:
        super().__init__(message)
        self.detected, self.claimed = detected, claimed


def decide_upload_type(
    head: bytes, *, complete: bool, claimed: str | None, allowed: frozenset[str]
) -> str:
    """The content type to store, from the first bytes of an upload (see common.scanning.sniff).

    A format with magic bytes (images, PDF) is what the bytes say, whatever the client claims:
    a PNG sent as `file.pdf`/`application/pdf` is stored as image/png. Text has no magic (any
    UTF-8 is "text"), so it is accepted only when the client also says text or says nothing:
    text sent as `image/jpeg` is refused. Between text/plain and text/csv the client's claim
    wins; the scan job then checks the whole file bears it out.
    """
    detected = sniff(head, complete=complete)
    claim = normalize_type(claimed)
    if detected is None:
        raise TypeRefused("the content is not of a recognised type", detected=None, claimed=claim)
    final = detected
    if detected in TEXT_TYPES:
        if claim is not None and claim not in TEXT_TYPES:
            raise TypeRefused(f"the content is text, not {claim}", detected=detected, claimed=claim)
        final = claim or detected
    if final not in allowed:
        raise TypeRefused(f"{final} files are not accepted", detected=detected, claimed=claim)
    return final


def scan_policy(settings: Settings) -> ScanPolicy:
    return ScanPolicy(
        allowed_types=frozenset(settings.upload_allowed_types),
        max_pixels=settings.image_max_pixels,
    )


def clamd_client(settings: Settings) -> ClamdClient | None:
    """None when the virus scan is skipped (no CLAMD_URL, or VIRUS_SCAN=off); the type and
    image checks still run. A production worker without either refuses to start
    (Settings.production_problems)."""
    if settings.virus_scanner != "clamd":
        return None
    return ClamdClient.from_url(settings.clamd_url, timeout=settings.clamd_timeout)


_UNSAFE_NAME_CHARS = re.compile(r'[\\/:*?"<>|]')


def sanitize_filename(name: str | None) -> str:
    """A display name safe to store and to echo in a header: the last path component, NFC,
    no control/format characters (bidi overrides included), no leading dots, at most 255
    characters with the extension kept."""
    if not name:
        return FALLBACK_NAME
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(
        " " if ch.isspace() else ch
        for ch in base
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    base = _UNSAFE_NAME_CHARS.sub("_", base)
    base = re.sub(r"\s+", " ", base).strip(" .")
    if len(base) > MAX_NAME_LENGTH:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            base = stem[: MAX_NAME_LENGTH - len(ext) - 1].rstrip() + "." + ext
        else:
            base = base[:MAX_NAME_LENGTH]
    return base or FALLBACK_NAME


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987)."""
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:150].strip() or FALLBACK_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def purge_deleted_blobs(session: Session, storage: Storage, *, limit: int = 100) -> int:
    """Delete up to `limit` queued blobs and their tombstones; return how many were removed.

    Rows are locked with SKIP LOCKED, so concurrent purges never fight over a key. A blob that
    cannot be deleted now (storage unreachable) keeps its tombstone for the next run.
    The caller commits (e.g. `with db.transaction() as session:`).
    """
    keys = session.scalars(
        select(FileDeletion.key)
        .order_by(FileDeletion.requested_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    done = []
    for key in keys:
        try:
            storage.delete(key)
        except Exception as exc:  # the storage may be down: retry on the next purge
            log.warning("files.purge_failed", key=key, error=repr(exc)[:200])
            continue
        done.append(key)
    if done:
        session.execute(delete(FileDeletion).where(FileDeletion.key.in_(done)))
    return len(done)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["purge"]:
        print("usage: python -m common.files purge", file=sys.stderr)
        return 2
    from common.db import SyncDatabase
    from common.settings import get_settings

    settings = get_settings()
    database = SyncDatabase(settings)
    storage = get_storage(settings)
    total = 0
    try:
        while True:
            with database.transaction() as session:
                removed = purge_deleted_blobs(session, storage, limit=500)
            total += removed
            if removed < 500:
                break
    finally:
        database.dispose()
    print(f"removed {total} blob(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
