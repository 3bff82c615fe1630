"""One contract, both backends: local disk (tmp_path) and S3 (moto server over real HTTP)."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from common.storage import NotFound, StoredObject, TooLarge, new_key, write_async

MB = 1024 * 1024


def body(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A deterministic body generated on the fly (never held whole in memory)."""
    block = hashlib.sha256(b"seed").digest() * (chunk // 32)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def test_round_trip_size_and_sha256(backend) -> None:
    key = new_key("docs")
    data = b"hello, storage\n"
    stored = backend.storage.write(key, [data[:5], b"", data[5:]], content_type="text/plain")
    assert stored == StoredObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert backend.storage.exists(key)
    assert b"".join(backend.storage.read(key)) == data


def test_empty_body(backend) -> None:
    stored = backend.storage.write("empty", [])
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert b"".join(backend.storage.read("empty")) == b""


def test_overwrite_replaces_whole_object(backend) -> None:
    backend.storage.write("k", [b"a much longer first version"])
    backend.storage.write("k", [b"v2"])
    assert b"".join(backend.storage.read("k")) == b"v2"


def test_multi_megabyte_body_streams_in_bounded_memory(backend) -> None:
    total = 12 * MB + 12345  # > two 5 MiB parts on S3: a real multipart upload
    expected = hashlib.sha256()
    for piece in body(total):
        expected.update(piece)
    tracemalloc.start()
    try:
        stored = backend.storage.write("big.bin", body(total), max_size=total)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (stored.size, stored.sha256) == (total, expected.hexdigest())
    # Local holds one chunk; S3 one 5 MiB part (plus its bytes() copy for the request).
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB for a {total / MB:.1f} MB body"
    got = hashlib.sha256()
    size = 0
    for chunk in backend.storage.read("big.bin"):
        assert len(chunk) <= 1 * MB
        got.update(chunk)
        size += len(chunk)
    assert (size, got.hexdigest()) == (total, expected.hexdigest())


@pytest.mark.parametrize("total", [100_001, 11 * MB], ids=["small", "multipart"])
def test_size_limit_enforced_mid_stream_leaves_nothing(backend, total) -> None:
    limit = total - 1
    pulled = 0

    def counting() -> Iterator[bytes]:
        nonlocal pulled
        for piece in body(total + 10 * MB):
            pulled += len(piece)
            yield piece

    with pytest.raises(TooLarge) as info:
        backend.storage.write("too-big", counting(), max_size=limit)
    assert info.value.limit == limit
    assert pulled <= limit + 64 * 1024, "kept reading after the limit was crossed"
    assert not backend.storage.exists("too-big")
    # no partial object, no temp file, no dangling multipart upload
    assert [p for p in backend.leftovers() if "too-big" in p or ".tmp-" in p] == []
    assert [p for p in backend.leftovers() if not p.endswith("uploads")] == []


def test_failed_write_keeps_previous_version(backend) -> None:
    backend.storage.write("doc", [b"original"])

    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        backend.storage.write("doc", failing())
    assert b"".join(backend.storage.read("doc")) == b"original"


def test_delete_and_exists(backend) -> None:
    backend.storage.write("gone", [b"x"])
    assert backend.storage.exists("gone")
    backend.storage.delete("gone")
    assert not backend.storage.exists("gone")
    backend.storage.delete("gone")  # idempotent


def test_unknown_key(backend) -> None:
    assert not backend.storage.exists("never-written")
    with pytest.raises(NotFound):
        backend.storage.read("never-written")
    with pytest.raises(NotFound):
        backend.storage.read("no-such-prefix/never-written")


def test_write_async_from_async_generator(backend) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in body(3 * MB):
            await asyncio.sleep(0)
            yield piece

    stored = asyncio.run(write_async(backend.storage, "async.bin", chunks(), max_size=3 * MB))
    assert stored.size == 3 * MB
    with pytest.raises(TooLarge):
        asyncio.run(write_async(backend.storage, "async2.bin", chunks(), max_size=MB))
    assert not backend.storage.exists("async2.bin")


def test_signed_url(backend) -> None:
    backend.storage.write("report.pdf", [b"%PDF-1.4 fake"])
    url = backend.storage.signed_url("report.pdf", 60, download_name="Report é.pdf")
    if backend.name == "local":
        assert url is None  # the API builds an HMAC link (common.signing) for local files
        return
    assert url is not None
    # plain HTTP, no boto3: what a browser does with the link
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.content == b"%PDF-1.4 fake"
    assert resp.headers["content-disposition"].startswith('attachment; filename="Report__.pdf"')


def test_s3_presigned_url_carries_its_expiry(s3) -> None:
    # moto (5.2) serves presigned URLs without checking expiry or signature, so expiry is
    # checked here as what real S3 enforces: SigV4 query auth, whose signed canonical query
    # includes X-Amz-Date and X-Amz-Expires (so neither can be stretched by the holder).
    s3.storage.write("k", [b"data"])
    query = parse_qs(urlsplit(s3.storage.signed_url("k", 5) or "").query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["5"]
    signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    assert abs(signed_at - time.time()) < 60
    default = parse_qs(urlsplit(s3.storage.signed_url("k") or "").query)
    assert default["X-Amz-Expires"] == ["300"]  # StorageConfig.presign_expiry
    with pytest.raises(ValueError):
        s3.storage.signed_url("k", 8 * 24 * 3600)  # beyond SigV4's 7-day maximum


def test_server_keys_are_random_and_valid() -> None:
    keys = {new_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(k) == 32 and k.isalnum() for k in keys)
    assert new_key("submissions").startswith("submissions/")


def test_local_writes_are_private_and_fsynced_by_rename(tmp_path) -> None:
    from common.storage import LocalStorage

    store = LocalStorage(tmp_path)
    store.write("a", [b"1"])
    assert os.stat(tmp_path / "a").st_mode & 0o077 == 0  # mkstemp: 0600, not world-readable
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
