from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ComponentHealth(BaseModel):
    # Anonymous callers see `status` only; the metrics token or an admin also get the latency,
    # the error and what each check adds (e.g. `backend`, `answered`, the scanner's version).
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "down", "disabled"]
    latency_ms: float | None = None
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]
    version: str | None = None


class Liveness(BaseModel):
    status: Literal["ok"]
