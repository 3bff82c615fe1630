"""Fixtures for the storage contract suite: both backends behind one `backend` fixture.

The servers (moto, clamd) and the shared samples live in tests/storage_servers.py and are
registered for the whole suite by tests/conftest.py. This directory is a package so that this
conftest never shadows tests/conftest.py as the importable module `conftest`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from storage_servers import REGION

from common.storage import S3Storage, Storage, StorageConfig, make_storage


@dataclass
class Backend:
    name: str
    storage: Storage
    leftovers: Callable[[], list[str]]  # everything the backend holds (incl. temp/partial)


def local_backend(root: Path) -> Backend:
    storage = make_storage(StorageConfig(backend="local", local_root=root, prefix="uploads"))
    return Backend(
        "local", storage, lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    )


def s3_backend(endpoint: str, bucket: str, session: boto3.Session, **kw: object) -> Backend:
    prefix = f"t-{uuid.uuid4().hex}"  # one bucket, a fresh prefix per test
    config = StorageConfig(
        backend="s3",
        s3_bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        region=REGION,
        **kw,  # type: ignore[arg-type]
    )
    storage = make_storage(config, session=session)
    assert isinstance(storage, S3Storage)
    client = storage.client

    def leftovers() -> list[str]:
        objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
        return sorted([o["Key"] for o in objects] + [f"upload:{u['Key']}" for u in uploads])

    return Backend("s3", storage, leftovers)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return local_backend(tmp_path / "store")
    return s3_backend(
        request.getfixturevalue("moto_endpoint"),
        request.getfixturevalue("s3_bucket"),
        request.getfixturevalue("boto_session"),
        s3_part_size=5 * 1024 * 1024,  # smallest legal part, so multi-MB bodies go multipart
    )


@pytest.fixture
def s3(moto_endpoint: str, s3_bucket: str, boto_session: boto3.Session) -> Backend:
    return s3_backend(moto_endpoint, s3_bucket, boto_session)
