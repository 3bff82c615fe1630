"""Blob storage for uploads: local disk or S3, behind one small interface.

The API is synchronous on purpose: boto3 and file I/O block, so async callers run it in a
thread (`await asyncio.to_thread(storage.write, ...)`, or `write_async` for an async body).
Bodies are always handled as streams of chunks, so memory stays bounded by one chunk (local)
or one multipart part (S3) whatever the upload size, and a size limit stops the upload as soon
as it is crossed.

Keys are opaque, server-chosen strings (see `new_key`); they are validated against a strict
charset so that a key can never name a path outside the local root or another S3 prefix.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from concurrent.futures import Executor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import boto3

DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every multipart part but the last
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer

# One path segment: starts alphanumeric (so never ".", "..", or a hidden temp file), and has
# no "/", "\\", "%", NUL or whitespace, so neither raw nor URL-encoded traversal can pass.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY_RE = re.compile(rf"(?:{_SEGMENT}/)?{_SEGMENT}")  # "name" or "prefix/name"
_PREFIX_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")


class StorageError(Exception):
    """Base class of the errors raised by this module."""


class InvalidKey(StorageError, ValueError):
    """The key is not of the allowed form (or would resolve outside the root)."""


class NotFound(StorageError, LookupError):
    """No object under that key."""


class TooLarge(StorageError):
    """The body crossed `max_size`; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str  # hex digest of the stored bytes


@dataclass(frozen=True)
class StorageConfig:
    backend: Literal["local", "s3"] = "local"
    local_root: Path | None = None
    s3_bucket: str = ""
    prefix: str = ""  # applied under the root / inside the bucket, e.g. "uploads" or "prod/uploads"
    endpoint_url: str | None = None  # None: AWS; set for MinIO, moto, etc.
    region: str | None = None
    presign_expiry: int = 300  # seconds; default lifetime of signed URLs
    s3_part_size: int = 8 * 1024 * 1024  # memory bound of an S3 upload
    chunk_size: int = DEFAULT_CHUNK_SIZE  # size of the chunks `read` yields

    def __post_init__(self) -> None:
        if self.backend == "local" and self.local_root is None:
            raise ValueError("local storage needs local_root")
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("s3 storage needs s3_bucket")
        if self.backend not in ("local", "s3"):
            raise ValueError(f"unknown storage backend {self.backend!r}")
        if self.prefix.strip("/") and not _PREFIX_RE.fullmatch(self.prefix.strip("/")):
            raise ValueError(f"invalid storage prefix {self.prefix!r}")
        if not 1 <= self.presign_expiry <= MAX_PRESIGN_SECONDS:
            raise ValueError("presign_expiry must be between 1 s and 7 days")
        if self.s3_part_size < MIN_PART_SIZE:
            raise ValueError(f"s3_part_size must be at least {MIN_PART_SIZE}")


class Storage(Protocol):
    """What the API and the worker rely on. All methods block; see the module docstring."""

    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        max_size: int | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        """Store the chunks under key, replacing any object atomically; raise TooLarge."""
        ...

    def read(self, key: str) -> Iterator[bytes]:
        """Chunks of the object (NotFound is raised by this call, not on first iteration)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def signed_url(
        self,
        key: str,
        expires_in: int | None = None,
        *,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        """A time-limited GET URL, or None when the API must serve the bytes itself
        (local disk: it signs its own link with common.signing)."""
        ...


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


def new_key(prefix: str | None = None) -> str:
    """A random server-side key (128 bits, hex so it fits the charset), optionally 'prefix/…'."""
    name = secrets.token_hex(16)
    return validate_key(f"{prefix}/{name}" if prefix else name)


def iter_file(fileobj: IO[bytes], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks of an open binary file, for `write(key, iter_file(f))`."""
    while chunk := fileobj.read(chunk_size):
        yield chunk


async def write_async(
    storage: Storage,
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    max_size: int | None = None,
    content_type: str | None = None,
    executor: Executor | None = None,
) -> StoredObject:
    """Stream an async body (e.g. `request.stream()`) into storage from a worker thread.

    The thread pulls one chunk at a time from the event loop, so the body is never buffered
    and a TooLarge stops reading the request at the limit. The thread is busy for as long as
    the client takes to send the body: pass a dedicated `executor` so that slow uploads cannot
    exhaust the loop's default one (which also serves `asyncio.to_thread`, a handful of threads).
    """
    loop = asyncio.get_running_loop()
    ait = aiter(chunks)

    def pull() -> Iterator[bytes]:
        while (chunk := asyncio.run_coroutine_threadsafe(_anext(ait), loop).result()) is not None:
            yield chunk

    call = functools.partial(
        storage.write, key, pull(), max_size=max_size, content_type=content_type
    )
    if executor is None:
        return await asyncio.to_thread(call)
    return await loop.run_in_executor(executor, contextvars.copy_context().run, call)


async def _anext(ait: Any) -> bytes | None:
    try:
        return bytes(await anext(ait))
    except StopAsyncIteration:  # would not cross the thread boundary cleanly
        return None


def _hashing(
    chunks: Iterable[bytes], max_size: int | None, sink: Callable[[bytes], object]
) -> tuple[int, str]:
    """Feed chunks to sink, counting and hashing; raise TooLarge before the limit is crossed."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise TooLarge(max_size)
        digest.update(chunk)
        sink(chunk)
    return size, digest.hexdigest()


class LocalStorage:
    def __init__(self, root: Path, *, prefix: str = "", chunk_size: int = DEFAULT_CHUNK_SIZE):
        base = Path(root) / prefix.strip("/") if prefix.strip("/") else Path(root)
        base.mkdir(parents=True, exist_ok=True)
        self.root = base.resolve(strict=True)
        self.chunk_size = chunk_size

    def path(self, key: str) -> Path:
        """Filesystem path of a key, refusing anything that resolves outside the root
        (the charset already forbids traversal; this also defeats symlinks planted inside)."""
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(f"storage key {key!r} resolves outside the root")
        return path

    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        max_size: int | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        dest = self.path(key)
        dest.parent.mkdir(exist_ok=True)
        # Temp file in the same directory so os.replace is an atomic rename; its dot prefix
        # can never match a valid key, so a half-written file is never readable as an object.
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                size, sha = _hashing(chunks, max_size, f.write)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(dest.parent)  # make the rename itself durable
        return StoredObject(key=key, size=size, sha256=sha)

    def read(self, key: str) -> Iterator[bytes]:
        try:
            f = open(self.path(key), "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(key) from None
        return _iter_and_close(f, self.chunk_size)

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError, NotADirectoryError):
            self.path(key).unlink()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def signed_url(
        self,
        key: str,
        expires_in: int | None = None,
        *,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        validate_key(key)
        return None  # the API serves local files behind a common.signing link


def _iter_and_close(f: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    with f:
        yield from iter_file(f, chunk_size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Storage:
    def __init__(self, config: StorageConfig, *, session: boto3.Session | None = None) -> None:
        import boto3  # imported lazily: local-only deployments never load botocore
        from botocore.config import Config

        self.config = config
        self.bucket = config.s3_bucket
        self.prefix = f"{config.prefix.strip('/')}/" if config.prefix.strip("/") else ""
        self.client = (session or boto3.Session()).client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            config=Config(signature_version="s3v4", retries={"mode": "standard"}),
        )

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        max_size: int | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        full = self._key(key)
        extra = {"ContentType": content_type} if content_type else {}
        upload = _MultipartWriter(self.client, self.bucket, full, self.config.s3_part_size, extra)
        try:
            size, sha = _hashing(chunks, max_size, upload.add)
            upload.finish()
        except BaseException:
            upload.abort()  # no partial object and no dangling multipart upload
            raise
        return StoredObject(key=key, size=size, sha256=sha)

    def read(self, key: str) -> Iterator[bytes]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            raise NotFound(key) from None
        return _iter_body(resp["Body"], self.config.chunk_size)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def signed_url(
        self,
        key: str,
        expires_in: int | None = None,
        *,
        download_name: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        expires = self.config.presign_expiry if expires_in is None else expires_in
        if not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise ValueError("expires_in must be between 1 s and 7 days")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if download_name:  # attachment: a browser must never render an upload inline
            params["ResponseContentDisposition"] = _attachment(download_name)
        if content_type:
            params["ResponseContentType"] = content_type
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires
        )
        return url


def _iter_body(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def _attachment(name: str) -> str:
    from urllib.parse import quote

    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:150] or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


class _MultipartWriter:
    """Buffers at most one part; a body that fits in one part is a single PutObject."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int, extra: dict) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size, self.extra = part_size, extra
        self.buf = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) >= self.part_size:
            self._flush_part()

    def _flush_part(self) -> None:
        if self.upload_id is None:
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.extra
            )
            self.upload_id = resp["UploadId"]
        number = len(self.parts) + 1
        resp = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=self.buf,
        )
        self.parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        self.buf = bytearray()  # new buffer: botocore may still hold the old one

    def finish(self) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.buf, **self.extra)
            return
        if self.buf:
            self._flush_part()
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        self.buf.clear()
        if self.upload_id is not None:
            with suppress(Exception):  # best effort; a bucket lifecycle rule is the backstop
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )


def make_storage(config: StorageConfig, *, session: boto3.Session | None = None) -> Storage:
    """Build the configured backend. `session` overrides the default AWS credential chain."""
    if config.backend == "local":
        assert config.local_root is not None  # checked by StorageConfig
        return LocalStorage(config.local_root, prefix=config.prefix, chunk_size=config.chunk_size)
    return S3Storage(config, session=session)
