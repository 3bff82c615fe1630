"""The files API: streaming uploads, type and size checks, access rules, signed links.

Every test gets its own API app (own Redis prefix, own storage root or S3 prefix) through
`isolated`, so no worker of the session scans these uploads: files stay `pending` unless a
test marks them clean in the database, exactly as the scan job would.
"""

from __future__ import annotations

import hashlib
import io
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import func, select, update
from storage_servers import AWS_ENV, REGION, minimal_pdf

from common.files import api_download_url, get_storage, purge_deleted_blobs, storage_config
from common.models import ClassMember, Exam, ExamClass, FileDeletion, Job, SchoolClass, StoredFile
from common.storage import Storage

MB = 1024 * 1024
BOUNDARY = "----mcq-test-boundary-7MA4YWxkTrZu0gW"


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Any
    storage: Storage
    root: Path | None  # local backend root

    def leftovers(self) -> list[str]:
        """Everything on local disk under the root, temp files included."""
        assert self.root is not None
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
def files_api(isolated, tmp_path, monkeypatch, request):
    async def build(backend: str = "local", **overrides: Any) -> Api:
        root = tmp_path / "files"
        values: dict[str, Any] = {"storage_local_root": str(root)}
        if backend == "s3":
            for name, value in AWS_ENV.items():  # the default AWS credential chain
                monkeypatch.setenv(name, value)
            values = {
                "storage_backend": "s3",
                "s3_bucket": request.getfixturevalue("s3_bucket"),
                "s3_endpoint_url": request.getfixturevalue("moto_endpoint"),
                "s3_region": REGION,
                "storage_prefix": f"t-{uuid.uuid4().hex}",
            }
        values.update(overrides)
        client, settings, _ = await isolated(**values)
        return Api(client, settings, get_storage(settings), root if backend == "local" else None)

    return build


@pytest.fixture
async def api(files_api) -> Api:
    return await files_api()


def png_bytes(size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def form(*parts: tuple[str, str | None, str | None, bytes]) -> bytes:
    """A multipart body from (field, filename, content type, data) parts."""
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


FORM_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def upload(
    api: Api, headers, data: bytes, name="file.bin", ctype=None, **kw
) -> httpx.Response:
    files = {"file": (name, data, ctype) if ctype else (name, data)}
    return await api.client.post("/v1/files/upload", files=files, headers=headers, **kw)


async def post_raw(api: Api, headers, body: Any, **kw) -> httpx.Response:
    return await api.client.post(
        "/v1/files/upload", content=body, headers={**headers, **FORM_HEADERS}, **kw
    )


def mark(db, key: str, status: str, reason: str | None = None) -> None:
    """What the scan job writes when it finishes."""
    db.execute(
        update(StoredFile)
        .where(StoredFile.key == key)
        .values(scan_status=status, scan_reason=reason)
    )
    db.commit()


def make_test(db, owner, published: bool = True) -> Exam:
    test = Exam(owner_id=owner.id, title="Quiz", published=published)
    db.add(test)
    db.commit()
    return test


def row(db, key: str) -> StoredFile | None:
    db.expire_all()
    return db.scalar(select(StoredFile).where(StoredFile.key == key))


def count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


# Upload ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_upload_stores_bytes_and_records_a_pending_file(
    files_api, backend, student, auth_for, db
):
    api = await files_api(backend)
    pdf = minimal_pdf("upload")
    r = await upload(api, auth_for(student), pdf, "Report 1.pdf", "application/pdf")
    assert r.status_code == 201, r.text
    body = r.json()
    key = body["filename"]
    assert len(key) == 32 and int(key, 16) >= 0  # server-generated, not the client's name
    assert r.headers["location"] == f"/v1/files/{key}/info"
    assert body["size"] == len(pdf)
    assert body["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert body["content_type"] == "application/pdf"
    assert body["scan_status"] == "pending" and body["scan_reason"] is None
    assert body["original_name"] == "Report 1.pdf"
    assert body["owner_id"] == student.id and body["test_id"] is None
    assert body["url"].startswith(f"/v1/files/{key}?expires=")
    assert b"".join(api.storage.read(key)) == pdf
    stored = row(db, key)
    assert stored is not None and stored.sha256 == body["sha256"] and stored.size == len(pdf)
    # The scan job was enqueued in the same use case, with the key (never the bytes).
    job = db.get(Job, uuid.UUID(body["scan_task_id"]))
    assert job.kind == "files.scan" and job.params == {"key": key}
    assert job.owner_id == student.id and job.status == "queued"


async def test_client_name_is_sanitized_metadata_only(api, student, auth_for, db):
    nasty = "..\\..\\windows/../../etc/pa\u202esswd\x07 \u200b.txt".encode()
    body = form(("file", None, "text/plain", b"hello\n")).replace(
        b'name="file"', b'name="file"; filename="' + nasty + b'"'
    )
    r = await post_raw(api, auth_for(student), body)
    assert r.status_code == 201, r.text
    name = r.json()["original_name"]
    assert name == "passwd .txt"  # last component; bidi override, BEL, zero-width gone
    assert api.leftovers() == [r.json()["filename"]]  # stored under its key, nowhere else


async def test_png_sent_as_pdf_is_stored_as_png(api, student, auth_for):
    r = await upload(api, auth_for(student), png_bytes(), "scan.pdf", "application/pdf")
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == "image/png"


async def test_png_sent_as_pdf_is_refused_when_png_is_not_allowed(files_api, student, auth_for):
    api = await files_api(upload_allowed_types="application/pdf,text/plain")
    r = await upload(api, auth_for(student), png_bytes(), "scan.pdf", "application/pdf")
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "file_type_not_allowed"
    assert r.json()["error"]["details"]["detected"] == "image/png"
    assert api.leftovers() == []


async def test_text_sent_as_jpeg_is_415(api, student, auth_for, db):
    r = await upload(api, auth_for(student), b"just some words\n", "photo.jpg", "image/jpeg")
    assert r.status_code == 415, r.text
    assert r.json()["error"]["details"] == {
        "detected": "text/plain",
        "claimed": "image/jpeg",
        "allowed": sorted(api.settings.upload_allowed_types),
    }
    assert api.leftovers() == [] and count(db, StoredFile) == 0


TYPE_CASES = [  # (bytes, the client's Content-Type, the type stored)
    (b"plain words\nmore words\n", None, "text/plain"),
    (b"plain words\n", "application/octet-stream", "text/plain"),
    (b"a,b\n1,2\n", "text/csv", "text/csv"),
    (b"a,b\n1,2\n", "application/vnd.ms-excel", "text/csv"),  # Windows' CSV type
    (b"a,b\n1,2\n", "text/plain", "text/plain"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "text/plain", "image/gif"),
]
REFUSED_CASES = [  # (bytes, the client's Content-Type): always 415
    (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "text/plain"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>', "image/png"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "application/pdf"),
    (b"PK\x03\x04" + bytes(100), "text/csv"),
    (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), None),
]


async def test_type_comes_from_the_bytes(api, student, auth_for, db):
    h = auth_for(student)
    for data, ctype, expected in TYPE_CASES:
        r = await upload(api, h, data, "x", ctype)
        assert r.status_code == 201, (data, ctype, r.text)
        assert r.json()["content_type"] == expected, (data, ctype)
    for data, ctype in REFUSED_CASES:
        r = await upload(api, h, data, "innocent.pdf", ctype)
        assert r.status_code == 415, (data, ctype, r.text)
    assert count(db, StoredFile) == len(TYPE_CASES) == len(api.leftovers())


async def test_empty_file_is_422(api, student, auth_for, db):
    r = await upload(api, auth_for(student), b"", "empty.txt", "text/plain")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "empty_file"
    assert api.leftovers() == [] and count(db, StoredFile) == 0


MALFORMED_FORMS = [  # (body, status, error code)
    (form(("other", "a.txt", "text/plain", b"hi")), 422, "unknown_field"),
    (form(("test_id", None, None, b"1")), 422, "validation_error"),  # no file at all
    (form(("file", "a.txt", None, b"a"), ("file", "b.txt", None, b"b")), 422, "validation_error"),
    (
        form(("file", "a.txt", None, b"hi"), ("test_id", None, None, b"abc")),
        422,
        "validation_error",
    ),
    (
        form(("file", "a.txt", None, b"hi"), ("test_id", None, None, b"9" * 30)),
        422,
        "validation_error",
    ),
    # Not well-formed multipart at all: 400, the same code as every other upload route.
    (form(("file", "a.txt", None, b"hi"))[:-10], 400, "malformed_multipart"),  # truncated
    (b"no multipart here", 400, "malformed_multipart"),
    (
        b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: attachment\r\n\r\nx\r\n",
        400,
        "malformed_multipart",
    ),
]


async def test_malformed_forms_are_4xx_and_store_nothing(api, student, auth_for, db):
    h = auth_for(student)
    for body, status, code in MALFORMED_FORMS:
        r = await post_raw(api, h, body)
        assert r.status_code == status, (body[:80], r.text)
        assert r.json()["error"]["code"] == code, body[:80]
    assert api.leftovers() == [] and count(db, StoredFile) == 0


async def test_truncated_file_is_not_stored(api, student, auth_for, db):
    body = form(("file", "big.txt", "text/plain", b"x" * 300_000))
    r = await post_raw(api, auth_for(student), body[:200_000])
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_multipart"
    assert api.leftovers() == [] and count(db, StoredFile) == 0


async def test_non_multipart_body_is_415(api, student, auth_for):
    for content_type in (
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
    ):
        headers = {**auth_for(student), **({"Content-Type": content_type} if content_type else {})}
        r = await api.client.post("/v1/files/upload", content=b'{"file": "x"}', headers=headers)
        assert r.status_code == 415, content_type
        assert r.json()["error"]["code"] == "multipart_required"


async def test_size_limit_is_exact(files_api, student, auth_for, db):
    api = await files_api(upload_max_bytes=1000)
    h = auth_for(student)
    assert (await upload(api, h, b"a" * 1000, "ok.txt", "text/plain")).status_code == 201
    r = await upload(api, h, b"a" * 1001, "big.txt", "text/plain")
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "payload_too_large",
        "message": "the file is larger than 1,000 bytes",
        "details": {"max_bytes": 1000},
    }
    assert len(api.leftovers()) == 1 and count(db, StoredFile) == 1


async def streamed_form(
    total: int, pulled: list[int], chunk: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """A multipart body generated on the fly (sent chunked, without Content-Length)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    pulled.append(len(head))
    yield head
    block = b"0123456789abcdef" * (chunk // 16)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        pulled.append(len(piece))
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_11_mb_upload_is_413_mid_stream_with_bounded_memory(
    files_api, backend, student, auth_for, db
):
    api = await files_api(backend)
    h = auth_for(student)
    pulled: list[int] = []
    tracemalloc.start()
    try:
        r = await post_raw(api, h, streamed_form(11 * MB, pulled))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    # Refused as soon as the limit was crossed, not after reading the whole body ...
    assert 10 * MB < sum(pulled) <= 10 * MB + 256 * 1024
    # ... and the Python heap (client, app and storage together) never held the body: local
    # disk holds one chunk at a time, S3 one multipart part (StorageConfig.s3_part_size) plus
    # boto3's request buffers (measured 2.03 MB above the part with the API's background tasks).
    bound = (
        3 * MB if backend == "local" else storage_config(api.settings).s3_part_size + 5 * MB // 2
    )
    assert peak < bound < 11 * MB, f"peak {peak / MB:.1f} MB"
    assert count(db, StoredFile) == 0
    if backend == "local":
        assert api.leftovers() == []
    else:  # no object and no dangling multipart upload under the test's prefix
        client, bucket = api.storage.client, api.settings.s3_bucket  # type: ignore[attr-defined]
        prefix = api.settings.storage_prefix
        assert client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 0
        assert not client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")


async def test_declared_oversized_body_is_refused_before_reading(api, student, auth_for):
    pulled: list[int] = []
    body = streamed_form(11 * MB, pulled)
    headers = {**auth_for(student), **FORM_HEADERS, "Content-Length": str(11 * MB + 200)}

    r = await api.client.post("/v1/files/upload", content=body, headers=headers)
    assert r.status_code == 413
    assert sum(pulled) < 1024 * 1024  # at most what the transport pre-reads
    assert api.leftovers() == []


async def test_file_at_ten_megabytes_streams_through(api, student, auth_for):
    pulled: list[int] = []
    r = await post_raw(api, auth_for(student), streamed_form(10 * MB, pulled))
    assert r.status_code == 201, r.text
    assert r.json()["size"] == 10 * MB and r.json()["content_type"] == "text/plain"


# test_id context ---------------------------------------------------------------------------


async def test_attach_to_a_test_by_query_or_form_field(api, student, instructor, auth_for, db):
    h = auth_for(student)
    test = make_test(db, instructor)
    r = await upload(api, h, b"notes\n", "a.txt", "text/plain", params={"test_id": test.id})
    assert r.status_code == 201 and r.json()["test_id"] == test.id
    # As a form field sent after the file: read once the file has streamed through.
    body = form(
        ("file", "b.txt", "text/plain", b"notes\n"), ("test_id", None, None, str(test.id).encode())
    )
    r = await post_raw(api, h, body)
    assert r.status_code == 201 and r.json()["test_id"] == test.id
    body = form(("test_id", None, None, str(test.id).encode()), ("file", "c.txt", None, b"x\n"))
    r = await post_raw(api, h, body, params={"test_id": test.id})
    assert r.status_code == 201 and r.json()["test_id"] == test.id


async def test_attach_refused_for_unknown_or_foreign_tests(
    api, student, instructor, make_user, auth_for, db
):
    other = make_user("instructor")
    test = make_test(db, other)
    draft = make_test(db, other, published=False)
    for_a_class = make_test(db, other)  # assigned to a class the student is not in
    group = SchoolClass(owner_id=other.id, name="Another class")
    db.add(group)
    db.flush()
    db.add(ExamClass(test_id=for_a_class.id, class_id=group.id))
    db.commit()
    cases = [
        (instructor, {"test_id": test.id}, None),  # another instructor's test
        (student, {"test_id": draft.id}, None),  # unpublished: students cannot see it
        (student, {"test_id": for_a_class.id}, None),  # not open to this student
        (student, {"test_id": 2_000_000}, None),
        (student, {}, b"2000000"),  # unknown, as a form field (checked after streaming)
        (student, {"test_id": test.id}, str(draft.id).encode()),  # query and form disagree
    ]
    for user, params, field in cases:
        parts = [("file", "a.txt", "text/plain", b"hello\n")]
        if field is not None:
            parts.append(("test_id", None, None, field))
        r = await post_raw(api, auth_for(user), form(*parts), params=params)
        assert r.status_code == 422, (params, field, r.text)
        assert r.json()["error"]["details"][0]["path"] == "test_id"
    assert (await post_raw(api, auth_for(student), b"", params={"test_id": 0})).status_code == 422
    assert api.leftovers() == [] and count(db, StoredFile) == 0
    r = await upload(api, auth_for(other), b"key\n", "k.txt", params={"test_id": draft.id})
    assert r.status_code == 201  # the owner may attach to an unpublished test
    db.add(ClassMember(class_id=group.id, user_id=student.id))
    db.commit()
    r = await upload(api, auth_for(student), b"mine\n", "m.txt", params={"test_id": for_a_class.id})
    assert r.status_code == 201  # a member of the test's class may


# Download and access -------------------------------------------------------------------------


async def clean_file(api: Api, db, owner, auth_for, data: bytes, name="doc.txt", **kw) -> str:
    r = await upload(api, auth_for(owner), data, name, **kw)
    assert r.status_code == 201, r.text
    key = r.json()["filename"]
    mark(db, key, "clean")
    return key


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_owner_downloads_a_clean_file_as_attachment(
    files_api, backend, student, auth_for, db
):
    api = await files_api(backend)
    pdf = minimal_pdf("download")
    key = await clean_file(api, db, student, auth_for, pdf, "Résumé final.pdf")
    r = await api.client.get(f"/v1/files/{key}", headers=auth_for(student))
    assert r.status_code == 200
    assert r.content == pdf
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-length"] == str(len(pdf))
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"R_sum_ final.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf"
    )
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"] == f'"{hashlib.sha256(pdf).hexdigest()}"'


async def test_text_is_served_as_utf8_attachment(api, student, auth_for, db):
    key = await clean_file(api, db, student, auth_for, "héllo\n".encode(), "n.txt")
    r = await api.client.get(f"/v1/files/{key}", headers=auth_for(student))
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-disposition"].startswith("attachment;")


async def test_files_not_clean_are_409_with_their_status(api, student, auth_for, db):
    h = auth_for(student)
    r = await upload(api, h, b"hello\n", "a.txt")
    key = r.json()["filename"]
    r = await api.client.get(f"/v1/files/{key}", headers=h)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "file_pending"
    assert r.json()["error"]["details"] == {"scan_status": "pending", "scan_reason": None}
    assert r.headers["retry-after"] == "2"
    mark(db, key, "rejected", "malware:Eicar-Test-Signature")
    for url in (
        f"/v1/files/{key}",
        (await api.client.get(f"/v1/files/{key}/info", headers=h)).json()["url"],
    ):
        r = await api.client.get(url, headers=h)
        assert r.status_code == 409
        assert r.json()["error"]["details"] == {
            "scan_status": "rejected",
            "scan_reason": "malware:Eicar-Test-Signature",
        }


async def test_who_may_read_a_file(api, make_user, auth_for, db):
    owner = make_user("student")
    other_student = make_user("student")
    test_owner = make_user("instructor")
    other_instructor = make_user("instructor")
    admin = make_user("admin")
    test = make_test(db, test_owner)
    in_test = await clean_file(api, db, owner, auth_for, b"in test\n", params={"test_id": test.id})
    private = await clean_file(api, db, owner, auth_for, b"private\n")
    expected = {
        owner: (200, 200),
        admin: (200, 200),
        test_owner: (200, 404),  # instructors read files in their test's context only
        other_instructor: (404, 404),
        other_student: (404, 404),
    }
    for user, statuses in expected.items():
        for key, status in zip((in_test, private), statuses, strict=True):
            h = auth_for(user)
            for path in (f"/v1/files/{key}", f"/v1/files/{key}/info"):
                r = await api.client.get(path, headers=h)
                assert r.status_code == status, (user.role, path, r.text)
            if status == 404:  # indistinguishable from a file that does not exist
                missing = await api.client.get(f"/v1/files/{'0' * 32}", headers=h)
                assert r.json() == missing.json()
    assert (await api.client.get(f"/v1/files/{private}")).status_code == 401


async def test_deleting_the_test_detaches_its_files(api, student, instructor, auth_for, db):
    test = make_test(db, instructor)
    key = await clean_file(api, db, student, auth_for, b"x\n", params={"test_id": test.id})
    assert (
        await api.client.get(f"/v1/files/{key}", headers=auth_for(instructor))
    ).status_code == 200
    db.delete(test)
    db.commit()
    assert row(db, key).test_id is None  # ON DELETE SET NULL: the student keeps the file
    assert (
        await api.client.get(f"/v1/files/{key}", headers=auth_for(instructor))
    ).status_code == 404
    assert (await api.client.get(f"/v1/files/{key}", headers=auth_for(student))).status_code == 200


# Signed links ------------------------------------------------------------------------------


async def test_signed_link_works_without_a_token_until_it_expires(files_api, student, auth_for, db):
    api = await files_api(download_url_seconds=120)
    key = await clean_file(api, db, student, auth_for, b"signed\n")
    info = (await api.client.get(f"/v1/files/{key}/info", headers=auth_for(student))).json()
    query = parse_qs(urlsplit(info["url"]).query)
    assert abs(int(query["expires"][0]) - (time.time() + 120)) < 5
    r = await api.client.get(info["url"])  # no Authorization header
    assert r.status_code == 200 and r.content == b"signed\n"
    assert r.headers["content-disposition"].startswith("attachment;")

    expired = api_download_url(api.settings, key, now=time.time() - 121)
    r = await api.client.get(expired)
    assert r.status_code == 403 and r.json()["error"]["code"] == "link_expired"


async def test_tampered_links_are_403(api, student, auth_for, db):
    key = await clean_file(api, db, student, auth_for, b"a\n")
    other = await clean_file(api, db, student, auth_for, b"b\n")
    url = api_download_url(api.settings, key)
    path, query = url.split("?")
    params = parse_qs(query)
    expires, sig = params["expires"][0], params["signature"][0]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    bad = [
        f"{path}?expires={expires}&signature={flipped}",
        f"{path}?expires={int(expires) + 3600}&signature={sig}",  # extended expiry
        f"/v1/files/{other}?expires={expires}&signature={sig}",  # another file's link
        f"{path}?expires={expires}",
        f"{path}?signature={sig}",
        f"{path}?expires=1e12&signature={sig}",
        f"{path}?expires={expires}&signature=",
    ]
    for link in bad:
        r = await api.client.get(link)
        assert r.status_code == 403, (link, r.text)
        assert r.json()["error"]["code"] == "invalid_signature"
    # A link signed with another secret (another deployment) is not valid here either.
    foreign = api_download_url(
        api.settings.model_copy(update={"jwt_secret": SecretStr("x" * 40)}), key
    )
    assert (await api.client.get(foreign)).status_code == 403
    # A valid link for a file deleted since then: the file is gone.
    assert (await api.client.get(url)).status_code == 200
    await api.client.delete(f"/v1/files/{key}", headers=auth_for(student))
    assert (await api.client.get(url)).status_code == 404


async def test_signing_secret_is_derived_from_jwt_secret_unless_set(
    files_api, student, auth_for, db
):
    api = await files_api(file_signing_secret="a-dedicated-file-link-secret-0123456789")
    key = await clean_file(api, db, student, auth_for, b"a\n")
    derived = api_download_url(api.settings.model_copy(update={"file_signing_secret": None}), key)
    assert (await api.client.get(derived)).status_code == 403
    assert (await api.client.get(api_download_url(api.settings, key))).status_code == 200


async def test_s3_clean_file_url_is_a_presigned_get(files_api, student, auth_for, db):
    api = await files_api("s3", download_url_seconds=300)
    pdf = minimal_pdf("s3")
    h = auth_for(student)
    r = await upload(api, h, pdf, "Report é.pdf", "application/pdf")
    key = r.json()["filename"]
    assert r.json()["url"].startswith(f"/v1/files/{key}?")  # pending: the API link, gated
    assert (await api.client.get(r.json()["url"])).status_code == 409
    mark(db, key, "clean")
    info = (await api.client.get(f"/v1/files/{key}/info", headers=h)).json()
    url = info["url"]
    assert url.startswith(api.settings.s3_endpoint_url)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"] and "X-Amz-Signature" in query
    async with httpx.AsyncClient() as real_http:  # straight to the S3 server, no bearer
        got = await real_http.get(url)
    assert got.status_code == 200 and got.content == pdf
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["content-disposition"].endswith("filename*=UTF-8''Report%20%C3%A9.pdf")
    assert got.headers["content-type"] == "application/pdf"
    listed = (await api.client.get("/v1/files", headers=h)).json()
    assert urlsplit(listed[0]["url"]).path == urlsplit(url).path


# Path tricks -------------------------------------------------------------------------------


TRICKS = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "..",
    "%2e%2e",
    "....%2F%2F",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "a" * 31 + "%00",
    "%00",
    "0" * 31 + "/",
    "0" * 32 + "%2F..%2F..%2Fsecret.txt",
    "0" * 32 + "%5C..%5Csecret.txt",
    "..%5C..%5Csecret.txt",
    "C:%5Cwindows",
    "A" * 32,  # keys are lowercase hex
    "0" * 33,
    "x" * 5000,
]


async def test_path_tricks_never_reach_outside_the_root(api, admin, auth_for, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (tmp_path / "files").mkdir(exist_ok=True)
    h = auth_for(admin)  # admins may read every file: only the key check stands in the way
    for trick in TRICKS:
        await try_trick(api, h, trick)
    assert secret.read_text() == "top secret"


async def test_symlink_planted_in_the_root_is_not_followed(api, student, auth_for, db, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    key = await clean_file(api, db, student, auth_for, b"mine\n")
    blob = api.root / key  # type: ignore[operator]
    blob.unlink()
    blob.symlink_to(secret)  # someone with disk access swaps the blob for a link
    r = await api.client.get(f"/v1/files/{key}", headers=auth_for(student))
    assert r.status_code == 404 and b"top secret" not in r.content


async def try_trick(api: Api, h: dict[str, str], trick: str) -> None:
    for method, suffix in (("GET", ""), ("GET", "/info"), ("DELETE", "")):
        r = await api.client.request(method, f"/v1/files/{trick}{suffix}", headers=h)
        # 307: Starlette drops a trailing slash by redirecting, to a path that is then refused.
        assert r.status_code in (307, 404, 405, 422), (method, trick, r.status_code, r.text)
        if r.status_code == 307:
            assert r.headers["location"].startswith("http://testserver/v1/files/")
        assert b"top secret" not in r.content
    link = f"/v1/files/{trick}?expires=9999999999&signature=x"
    r = await api.client.get(link)
    assert r.status_code in (307, 403, 404, 422) and b"top secret" not in r.content


# List and delete ---------------------------------------------------------------------------


async def test_list_own_files_admins_all_test_owner_by_test(api, make_user, auth_for, db):
    alice, bob = make_user("student"), make_user("student")
    teacher, admin = make_user("instructor"), make_user("admin")
    test = make_test(db, teacher)
    a1 = (await upload(api, auth_for(alice), b"a1\n", "a1.txt")).json()["filename"]
    a2 = (
        await upload(api, auth_for(alice), b"a2\n", "a2.txt", params={"test_id": test.id})
    ).json()["filename"]
    b1 = (await upload(api, auth_for(bob), b"b1\n", "b1.txt", params={"test_id": test.id})).json()[
        "filename"
    ]
    mark(db, a1, "clean")

    async def names(user, **params):
        r = await api.client.get("/v1/files", headers=auth_for(user), params=params)
        assert r.status_code == 200, r.text
        assert int(r.headers["x-total-count"]) >= len(r.json())
        return [f["filename"] for f in r.json()]

    assert await names(alice) == [a2, a1]  # newest first
    assert await names(bob) == [b1]
    assert await names(teacher) == []
    assert await names(teacher, test_id=test.id) == [b1, a2]
    assert await names(alice, test_id=test.id) == [a2]
    assert await names(admin) == [b1, a2, a1]
    assert await names(alice, scan_status="clean") == [a1]
    assert await names(admin, limit=1, offset=1) == [a2]
    r = await api.client.get("/v1/files", headers=auth_for(alice), params={"scan_status": "bogus"})
    assert r.status_code == 422


async def test_delete_removes_row_and_blob(api, make_user, auth_for, db):
    owner, other, admin = make_user("student"), make_user("student"), make_user("admin")
    teacher = make_user("instructor")
    test = make_test(db, teacher)
    key = await clean_file(api, db, owner, auth_for, b"bye\n", params={"test_id": test.id})
    for user in (other, teacher):  # reading is not deleting: only the owner and admins
        r = await api.client.delete(f"/v1/files/{key}", headers=auth_for(user))
        assert r.status_code == 404
    assert api.storage.exists(key)
    assert (await api.client.delete(f"/v1/files/{key}", headers=auth_for(owner))).status_code == 204
    assert row(db, key) is None and not api.storage.exists(key)
    assert count(db, FileDeletion) == 0  # the tombstone went with the blob
    assert (await api.client.delete(f"/v1/files/{key}", headers=auth_for(owner))).status_code == 404
    assert api.leftovers() == []
    other_key = await clean_file(api, db, owner, auth_for, b"x\n")
    assert (
        await api.client.delete(f"/v1/files/{other_key}", headers=auth_for(admin))
    ).status_code == 204
    assert api.leftovers() == []


async def test_deleting_the_owner_leaves_no_row_and_queues_the_blob(api, make_user, auth_for, db):
    owner, admin = make_user("student"), make_user("admin")
    keys = [await clean_file(api, db, owner, auth_for, f"{i}\n".encode()) for i in range(3)]
    r = await api.client.delete(f"/v1/users/{owner.id}", headers=auth_for(admin))
    assert r.status_code == 204
    db.expire_all()
    assert count(db, StoredFile) == 0  # ON DELETE CASCADE
    queued = set(db.scalars(select(FileDeletion.key)))
    assert queued == set(keys)  # the trigger queued every blob, in the same transaction
    assert all(api.storage.exists(k) for k in keys)
    assert purge_deleted_blobs(db, api.storage) == 3
    db.commit()
    assert not any(api.storage.exists(k) for k in keys)
    assert count(db, FileDeletion) == 0 and api.leftovers() == []


async def test_broker_down_leaves_nothing_behind(files_api, student, auth_for, db, tmp_path):
    dead = f"unix://{tmp_path / 'no-redis.sock'}"
    api = await files_api(redis_url=dead, broker_connect_timeout=0.2)
    r = await upload(api, auth_for(student), b"hello\n", "a.txt")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "queue_unavailable"
    assert count(db, StoredFile) == 0 and count(db, FileDeletion) == 0
    assert api.leftovers() == []


async def test_slow_uploads_do_not_starve_other_requests(api, student, auth_for, db):
    """Each upload holds a thread while its body trickles in; with 10 stalled uploads (more
    than the loop's default executor has threads) downloads must still be served."""
    import asyncio

    h = auth_for(student)
    key = await clean_file(api, db, student, auth_for, b"still served\n")
    release = asyncio.Event()

    async def stalled_body() -> AsyncIterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="s.txt"\r\n\r\n'
        ).encode() + b"slow text\n" * 10_000  # past the sniffed head: the write has started
        await release.wait()
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    uploads = [asyncio.create_task(post_raw(api, h, stalled_body())) for _ in range(10)]
    try:
        await asyncio.sleep(0.5)
        r = await asyncio.wait_for(api.client.get(f"/v1/files/{key}", headers=h), timeout=10)
        assert r.status_code == 200 and r.content == b"still served\n"
    finally:
        release.set()
        results = await asyncio.gather(*uploads)
    assert [r.status_code for r in results] == [201] * 10
