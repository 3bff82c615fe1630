from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from api.schemas.tasks import TaskAccepted
from common.models import Job


def accepted(job: Job) -> JSONResponse:
    """202 for work handed to a worker: the task id and where to poll it."""
    return JSONResponse(
        TaskAccepted.of(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/tasks/{job.id}"},
    )


# `responses=` of every route answering 202 (tests/api/test_openapi_contract.py checks it).
ACCEPTED_DOC: dict[int | str, dict[str, Any]] = {
    202: {
        "model": TaskAccepted,
        "description": "Accepted: poll `GET /v1/tasks/{task_id}` (also in `Location`).",
        "headers": {
            "Location": {
                "description": "`/v1/tasks/{task_id}`, where the task's status is polled.",
                "schema": {"type": "string"},
            }
        },
    }
}
