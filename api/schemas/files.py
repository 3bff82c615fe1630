from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from common.scanning import VirusScan

ScanStatus = Literal["pending", "clean", "rejected"]


class FileOut(BaseModel):
    filename: str = Field(description="Server-generated key; the file's name in every URL")
    url: str = Field(
        description="Signed, expiring download link that needs no bearer token: an S3 "
        "presigned GET once the file is clean on S3, otherwise this API's "
        "`/v1/files/{filename}?expires=…&signature=…`"
    )
    url_expires_at: datetime
    original_name: str = Field(description="The client's file name, sanitized (metadata only)")
    size: int = Field(description="Bytes")
    content_type: str = Field(description="Detected from the content, not from the client")
    sha256: str = Field(description="Hex SHA-256 of the stored bytes")
    scan_status: ScanStatus
    scan_reason: str | None = Field(
        default=None, description="Why the scan rejected the file (e.g. `malware:<signature>`)"
    )
    virus_scan: VirusScan | None = Field(
        default=None,
        description="What ClamAV said: `clean`, `infected`, or `skipped` (no scanner configured "
        "or VIRUS_SCAN=off; the type and image checks still ran). Null while pending, when the "
        "type or image checks rejected the file before ClamAV saw it, and for files scanned "
        "before this field existed.",
    )
    scanned_at: datetime | None = None
    scan_task_id: uuid.UUID | None = Field(
        default=None, description="The scan job: poll `GET /v1/tasks/{scan_task_id}`"
    )
    owner_id: int
    test_id: int | None = Field(default=None, description="The test whose context holds the file")
    created_at: datetime
