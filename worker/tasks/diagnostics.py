"""The diagnostic echo job: a probe of the whole queue path, used by health checks and benches."""

from __future__ import annotations

import time

from common.models import EchoRecord
from worker.app import app
from worker.jobs import JobContext, run_job

STEP_SECONDS = 0.1


def _echo(ctx: JobContext) -> None:
    delay = float(ctx.params.get("delay_seconds", 0))
    steps = max(1, round(delay / STEP_SECONDS)) if delay > 0 else 0
    for step in range(steps):
        time.sleep(delay / steps)
        ctx.progress(step + 1, steps)
    payload = ctx.params.get("payload")
    ctx.set_result({"payload": payload})
    with ctx.finish() as session:
        session.add(EchoRecord(job_id=ctx.job_id, payload=payload))


@app.task(name="diagnostics.echo", bind=True, acks_late=True)
def echo(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    run_job(self, job_id, _echo)
