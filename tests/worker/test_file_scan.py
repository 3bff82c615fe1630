"""The `files.scan` job in a real Celery worker, with a real clamd (EICAR-only database).

Each test builds its own API app and worker through `isolated` (own Redis prefix), so the
worker sees this test's storage root / S3 prefix and CLAMD_URL, and no other worker of the
session takes its jobs.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from pathlib import Path

import httpx
from face_photos import FACES
from helpers import wait_for_job
from PIL import Image
from sqlalchemy import select
from storage_servers import AWS_ENV, REGION, minimal_pdf, start_clamd

from common.files import get_storage
from common.models import FileDeletion, StoredFile

EICAR_REASON = "malware:Eicar-Test-Signature.UNOFFICIAL"  # clamd marks .hdb signatures


async def upload(client, headers, data: bytes, name: str, ctype: str | None = None) -> dict:
    files = {"file": (name, data, ctype) if ctype else (name, data)}
    r = await client.post("/v1/files/upload", files=files, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["scan_status"] == "pending"
    return r.json()


def png_bomb() -> bytes:
    """A tiny PNG whose header claims 60000 x 60000 pixels (3.6 gigapixels)."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data[8:33] = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return bytes(data)


def truncated_png() -> bytes:
    data = (FACES / "lin-manuel-miranda.png").read_bytes()
    return data[: len(data) // 2]  # valid header, image data cut in half


async def test_scan_verdicts_and_downloads(
    isolated, clamd_server, eicar, student, auth_for, tmp_path
):
    client, _settings, start = await isolated(
        storage_local_root=str(tmp_path / "files"), clamd_url=clamd_server.url
    )
    start()
    h = auth_for(student)
    pdf = minimal_pdf("clean")
    photo = (FACES / "biden.jpg").read_bytes()
    text_then_binary = b"line of text\n" * 6000 + b"\x00\x01\x02binary tail"
    cases = {  # name: (bytes, client type, expected status, expected reason)
        "eicar.txt": (eicar, "text/plain", "rejected", EICAR_REASON),
        "report.pdf": (pdf, "application/pdf", "clean", None),
        "biden.jpg": (photo, "image/jpeg", "clean", None),
        "miranda.png": (
            (FACES / "lin-manuel-miranda.png").read_bytes(),
            None,
            "clean",
            None,
        ),
        "cut.png": (truncated_png(), "image/png", "rejected", "undecodable_image"),
        "bomb.png": (png_bomb(), "image/png", "rejected", "too_many_pixels"),
        "bad.csv": (b"a,b\n1,2\n3,4,5\n", "text/csv", "rejected", "type_mismatch"),
        "notes.txt": (text_then_binary, "text/plain", "rejected", "type_mismatch"),
    }
    # What ClamAV said: it saw the files that passed the cheaper checks, and only those.
    virus_scan = {"eicar.txt": "infected", "report.pdf": "clean", "biden.jpg": "clean"}
    virus_scan["miranda.png"] = "clean"
    uploaded = {
        name: await upload(client, h, data, name, ctype)
        for name, (data, ctype, _, _) in cases.items()
    }
    assert all(info["virus_scan"] is None for info in uploaded.values())  # pending
    for name, (data, _, status, reason) in cases.items():
        info = uploaded[name]
        job = await wait_for_job(client, info["scan_task_id"], h)
        # A rejection is a verdict: the job succeeds with it as its result.
        assert job["status"] == "succeeded", (name, job)
        assert job["result"]["scan_status"] == status, (name, job["result"])
        assert job["result"]["reason"] == reason, (name, job["result"])
        now = (await client.get(f"/v1/files/{info['filename']}/info", headers=h)).json()
        assert now["scan_status"] == status and now["scan_reason"] == reason, name
        assert now["virus_scan"] == virus_scan.get(name), name
        assert job["result"]["virus_scan"] == virus_scan.get(name), name
        assert now["scanned_at"] is not None
        r = await client.get(f"/v1/files/{info['filename']}", headers=h)
        if status == "clean":
            assert r.status_code == 200 and r.content == data, name
            assert (await client.get(now["url"])).content == data  # the signed link, no token
        else:
            assert r.status_code == 409, name
            assert r.json()["error"]["details"] == {"scan_status": status, "scan_reason": reason}


async def test_clamd_down_means_retry_not_a_verdict(
    isolated, eicar, student, auth_for, tmp_path, db
):
    sock = tmp_path / "later" / "clamd.sock"
    client, _, start = await isolated(
        storage_local_root=str(tmp_path / "files"),
        clamd_url=f"unix://{sock}",
        environment="production",
        metrics_token="scrape-secret",
    )
    start(concurrency=1)
    h = auth_for(student)
    info = await upload(client, h, eicar, "eicar.txt", "text/plain")
    job = await wait_for_job(
        client, info["scan_task_id"], h, until=lambda j: j["status"] == "retrying"
    )
    assert job["error"] is None
    db.expire_all()
    assert (
        db.scalar(select(StoredFile.scan_status).where(StoredFile.key == info["filename"]))
        == "pending"
    )
    # Not served while the scanner is away.
    now = (await client.get(f"/v1/files/{info['filename']}/info", headers=h)).json()
    assert (now["scan_status"], now["virus_scan"]) == ("pending", None)
    r = await client.get(f"/v1/files/{info['filename']}", headers=h)
    assert r.status_code == 409 and r.json()["error"]["details"]["scan_status"] == "pending"
    server = start_clamd(tmp_path / "clamd", socket_path=sock)  # clamd comes back
    try:
        job = await wait_for_job(client, info["scan_task_id"], h, timeout=60)
    finally:
        server.stop()
    assert job["status"] == "succeeded" and job["attempts"] >= 2
    assert job["result"]["scan_status"] == "rejected" and job["result"]["reason"] == EICAR_REASON


async def test_scan_on_s3(
    isolated, clamd_server, moto_endpoint, s3_bucket, eicar, student, auth_for, monkeypatch
):
    for name, value in AWS_ENV.items():  # the worker inherits them: the default AWS chain
        monkeypatch.setenv(name, value)
    client, _settings, start = await isolated(
        storage_backend="s3",
        s3_bucket=s3_bucket,
        s3_endpoint_url=moto_endpoint,
        s3_region=REGION,
        storage_prefix=f"t-{uuid.uuid4().hex}",
        clamd_url=clamd_server.url,
    )
    start()
    h = auth_for(student)
    photo = (FACES / "obama-480p.jpg").read_bytes()
    good = await upload(client, h, photo, "obama.jpg")
    bad = await upload(client, h, eicar, "eicar.txt")
    assert (await wait_for_job(client, good["scan_task_id"], h))["result"]["scan_status"] == "clean"
    assert (await wait_for_job(client, bad["scan_task_id"], h))["result"]["reason"] == EICAR_REASON
    url = (await client.get(f"/v1/files/{good['filename']}/info", headers=h)).json()["url"]
    assert url.startswith(moto_endpoint)  # clean on S3: a presigned GET
    async with httpx.AsyncClient() as http:
        got = await http.get(url)
    assert got.status_code == 200 and got.content == photo
    assert got.headers["content-type"] == "image/jpeg"
    r = await client.get(f"/v1/files/{bad['filename']}/info", headers=h)
    assert r.json()["url"].startswith("/v1/files/")  # rejected: only the gated API link
    assert (await client.get(r.json()["url"])).status_code == 409


async def test_deleted_users_blobs_are_purged_after_scans(
    isolated, make_user, auth_for, tmp_path, db
):
    root = tmp_path / "files"
    client, settings, start = await isolated(storage_local_root=str(root))
    start(concurrency=1)
    leaver, stayer, admin = make_user("student"), make_user("student"), make_user("admin")
    gone = await upload(client, auth_for(leaver), minimal_pdf("bye"), "bye.pdf")
    await wait_for_job(client, gone["scan_task_id"], auth_for(leaver))
    assert (
        await client.delete(f"/v1/users/{leaver.id}", headers=auth_for(admin))
    ).status_code == 204
    storage = get_storage(settings)
    assert storage.exists(gone["filename"])  # queued for deletion, not deleted yet
    kept = await upload(client, auth_for(stayer), minimal_pdf("hi"), "hi.pdf")
    job = await wait_for_job(client, kept["scan_task_id"], auth_for(stayer))
    assert job["result"]["scan_status"] == "clean"  # no clamd configured: the other checks
    assert job["result"]["virus_scan"] == "skipped"  # ... and it says ClamAV never ran

    def tombstones() -> list[str]:
        db.expire_all()
        return list(db.scalars(select(FileDeletion.key)))

    deadline = time.monotonic() + 10
    while tombstones() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the purge runs right after the scan commits
    assert tombstones() == []
    assert not storage.exists(gone["filename"])
    assert sorted(p.name for p in Path(root).iterdir()) == [kept["filename"]]


async def test_virus_scan_off_serves_files_marked_skipped(
    isolated, clamd_server, eicar, student, auth_for, tmp_path
):
    """VIRUS_SCAN=off is an explicit choice, even with a scanner at hand: files are served and
    say plainly that ClamAV never looked at them."""
    client, _, start = await isolated(
        storage_local_root=str(tmp_path / "files"),
        clamd_url=clamd_server.url,
        virus_scan="off",
        environment="production",
        metrics_token="scrape-secret",
    )
    start(concurrency=1)
    h = auth_for(student)
    info = await upload(client, h, eicar, "eicar.txt", "text/plain")
    job = await wait_for_job(client, info["scan_task_id"], h)
    assert job["result"]["scan_status"] == "clean"
    now = (await client.get(f"/v1/files/{info['filename']}/info", headers=h)).json()
    assert (now["scan_status"], now["virus_scan"]) == ("clean", "skipped")
    r = await client.get(f"/v1/files/{info['filename']}", headers=h)
    assert r.status_code == 200 and r.content == eicar


def test_production_worker_refuses_to_start_without_a_scanner(test_env, tmp_path):
    import os
    import subprocess
    import sys

    from helpers import ROOT

    env = {**os.environ, **test_env, "ENVIRONMENT": "production", "CLAMD_URL": ""}
    env.pop("VIRUS_SCAN", None)
    cmd = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q", "default",
        "-c", "1", "-n", f"refuse-{uuid.uuid4().hex[:6]}@%h", "--without-mingle",
        "--without-gossip",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "CLAMD_URL" in done.stderr and "VIRUS_SCAN=off" in done.stderr
    assert "ready." not in done.stdout + done.stderr
