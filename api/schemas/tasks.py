from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue, field_validator

from api.schemas.common import StrictModel
from common.models import Job

JobStatus = Literal["queued", "started", "progress", "retrying", "succeeded", "failed", "canceled"]
MAX_ECHO_PAYLOAD = 16_384


class Progress(BaseModel):
    done: int
    total: int | None


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: JobStatus
    owner_id: int | None
    progress: Progress
    result: dict[str, Any] | None
    error: JobError | None
    attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            owner_id=job.owner_id,
            progress=Progress(done=job.progress_done, total=job.progress_total),
            result=job.result,
            error=(
                JobError(code=job.error_code, message=job.error_message or "")
                if job.error_code
                else None
            ),
            attempts=job.attempts,
            cancel_requested=job.cancel_requested,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class TaskAccepted(BaseModel):
    """Every 202: the work was handed to a worker; poll `GET /v1/tasks/{task_id}` (the
    `Location` header holds the same URL)."""

    task_id: uuid.UUID
    status: JobStatus

    @classmethod
    def of(cls, job: Job) -> TaskAccepted:
        return cls(task_id=job.id, status=job.status)


class EchoRequest(StrictModel):
    payload: JsonValue = None
    delay_seconds: float = Field(default=0, ge=0, le=600)

    @field_validator("payload")
    @classmethod
    def _small(cls, value: JsonValue) -> JsonValue:
        import json

        if len(json.dumps(value)) > MAX_ECHO_PAYLOAD:
            raise ValueError(f"must serialise to at most {MAX_ECHO_PAYLOAD} bytes")
        return value
