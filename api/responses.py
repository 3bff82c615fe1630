from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from common.models import Job


def accepted(job: Job) -> JSONResponse:
    """202 for work handed to a worker: the task id and where to poll it."""
    return JSONResponse(
        {"task_id": str(job.id)},
        status_code=202,
        headers={"Location": f"/v1/tasks/{job.id}"},
    )


ACCEPTED_DOC: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: poll `GET /v1/tasks/{task_id}` (also in `Location`).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["task_id"],
                    "properties": {"task_id": {"type": "string", "format": "uuid"}},
                }
            }
        },
    }
}
