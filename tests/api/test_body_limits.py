"""Request bodies are bounded before anything reads them.

Bodies are sent from generators that record every chunk the app pulled, so each test sees how
much of the body the server read before answering (httpx's ASGI transport pulls a chunk only
when the app asks for one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from exam_factories import new_test, qid
from face_photos import FACES

MB = 1024 * 1024
CHUNK = 64 * 1024


async def body(total: int, pulled: list[int], head: bytes = b"") -> AsyncIterator[bytes]:
    """`head`, then filler up to `total` bytes in 64 KiB chunks, recording what was pulled."""
    if head:
        pulled.append(len(head))
        yield head
    sent = len(head)
    while sent < total:
        piece = b"x" * min(CHUNK, total - sent)
        sent += len(piece)
        pulled.append(len(piece))
        yield piece


def too_large(r, max_bytes: int = MB) -> None:
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.json()["error"]["details"] == {"max_bytes": max_bytes}


async def test_content_length_over_the_limit_is_413_before_reading(client):
    """The reported case: an anonymous 150 MB POST to /v1/auth/refresh was read whole."""
    pulled: list[int] = []
    r = await client.post(
        "/v1/auth/refresh",
        content=body(150 * MB, pulled),
        headers={"Content-Type": "application/json", "Content-Length": str(150 * MB)},
    )
    too_large(r)
    assert r.headers["connection"] == "close"
    assert pulled == []


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/auth/refresh", "application/json"),  # parsed by FastAPI (a Pydantic body)
        ("/v1/auth/login", "application/json"),  # read by the route itself
        ("/v1/auth/login", "application/x-www-form-urlencoded"),
    ],
)
async def test_chunked_body_is_cut_off_at_the_limit(client, path, content_type):
    pulled: list[int] = []
    r = await client.post(
        path, content=body(150 * MB, pulled), headers={"Content-Type": content_type}
    )
    too_large(r)
    # Read up to the limit and one chunk past it, then no further.
    assert MB < sum(pulled) <= MB + CHUNK


async def test_the_limit_is_a_setting_and_bodies_under_it_pass(peer_app, instructor, auth_for):
    peers = await peer_app(max_request_body_bytes=4096)
    h = auth_for(instructor)
    async with peers() as api:
        assert (await new_test(api, h))["title"] == "Quiz"  # about 1 KB
        big = {"title": "Quiz", "description": "x" * 5000, "questions": []}
        too_large(await api.post("/v1/tests", json=big, headers=h), 4096)


async def test_upload_routes_keep_their_own_larger_limits(peer_app, instructor, student, auth_for):
    """A 4 KiB general limit; a 100 KB photo and a 6 KB CSV still go through."""
    peers = await peer_app(max_request_body_bytes=4096)
    photo = (FACES / "obama-480p.jpg").read_bytes()
    assert len(photo) > 4096
    async with peers() as api:
        r = await api.post(
            f"/v1/users/{student.id}/faces",
            files={"file": ("me.jpg", photo, "image/jpeg")},
            headers=auth_for(student),
        )
        assert r.status_code == 202, r.text
        h = auth_for(instructor)
        test = await new_test(api, h)
        csv = f"username,{qid(test, 0)}\n" + "".join(f"s{n},\n" for n in range(1000))
        assert len(csv) > 4096
        r = await api.post(
            f"/v1/tests/{test['id']}/submissions/import",
            files={"file": ("a.csv", csv.encode(), "text/csv")},
            headers=h,
        )
        assert r.status_code == 202, r.text


FILE_PART = (
    b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\n"
)
MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def upload_paths(test_id: int, user_id: int) -> list[str]:
    return [
        "/v1/files/upload",
        f"/v1/users/{user_id}/faces",
        f"/v1/tests/{test_id}/check-in",
        f"/v1/tests/{test_id}/attendance/photo",
        f"/v1/tests/{test_id}/submissions/import",
    ]


async def test_upload_routes_authenticate_before_reading_the_body(
    client, instructor, student, auth_for
):
    """The reported case: a tokenless 39 MB import was spooled to a temp file before its 401."""
    test = await new_test(client, auth_for(instructor))
    for path in upload_paths(test["id"], student.id):
        for chunked in (False, True):
            pulled: list[int] = []
            headers = dict(MULTIPART)
            if not chunked:
                headers["Content-Length"] = str(40 * MB)
            r = await client.post(path, content=body(40 * MB, pulled, FILE_PART), headers=headers)
            assert r.status_code == 401, (path, r.text)
            assert pulled == [], path


async def test_upload_routes_authorise_before_reading_the_body(
    client, instructor, student, make_user, auth_for
):
    """Signed in but not allowed: refused without reading a byte either."""
    test = await new_test(client, auth_for(instructor))
    draft = await new_test(client, auth_for(instructor), published=False)
    other = make_user("student")
    cases = [
        (f"/v1/users/{other.id}/faces", auth_for(student), 404),  # someone else's face
        (f"/v1/tests/{draft['id']}/check-in", auth_for(student), 404),  # hidden from students
        (f"/v1/tests/{test['id']}/check-in", auth_for(student), 409),  # not enrolled
        (f"/v1/tests/{test['id']}/attendance/photo", auth_for(student), 403),
        (f"/v1/tests/{test['id']}/submissions/import", auth_for(student), 403),
        (f"/v1/tests/{test['id']}/submissions/import", auth_for(make_user("instructor")), 404),
    ]
    for path, headers, status in cases:
        pulled: list[int] = []
        r = await client.post(
            path, content=body(40 * MB, pulled, FILE_PART), headers={**headers, **MULTIPART}
        )
        assert r.status_code == status, (path, r.text)
        assert pulled == [], path


async def test_csv_import_is_streamed_and_bounded_by_its_own_limit(peer_app, instructor, auth_for):
    """The import reads through the same streaming reader as the other uploads: past
    SUBMISSION_IMPORT_MAX_BYTES it stops at once, with the same error as every upload."""
    peers = await peer_app(submission_import_max_bytes=100_000)
    h = auth_for(instructor)
    async with peers() as api:
        test = await new_test(api, h)
        pulled: list[int] = []
        r = await api.post(
            f"/v1/tests/{test['id']}/submissions/import",
            content=body(40 * MB, pulled, FILE_PART),
            headers={**h, **MULTIPART},
        )
        too_large(r, 100_000)
        assert sum(pulled) <= 100_000 + 2 * CHUNK
        r = await api.post(
            f"/v1/tests/{test['id']}/submissions/import",
            content=FILE_PART + b"username\n",  # no closing boundary
            headers={**h, **MULTIPART},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_multipart"
