from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ComponentHealth(BaseModel):
    # Checks may add their own fields (e.g. `backend`, `answered`).
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "down"]
    latency_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]


class Liveness(BaseModel):
    status: Literal["ok"]
