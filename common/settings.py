"""Settings for the API and the worker, read from the environment and `.env`.

One `Settings` object serves both processes so that they can never disagree about the
database, the broker or the queue names.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "change-me-in-production-this-is-not-a-secret"  # noqa: S105
MIN_JWT_SECRET_LENGTH = 32
ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    environment: Literal["development", "test", "production"] = "development"

    # Servers. Empty means "start the embedded one under var_dir" (see common.embedded).
    database_url: str = ""
    redis_url: str = ""
    var_dir: Path = ROOT / "var"
    db_pool_size: int = 10
    db_max_overflow: int = 10

    # Auth
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(14, ge=1, le=365)
    first_admin_username: str = "admin"
    first_admin_password: SecretStr | None = None

    # Prefix of every Redis key (broker, results, cache, rate limits), so that several
    # deployments or parallel test sessions can share one Redis.
    redis_key_prefix: str = ""
    broker_visibility_timeout: int = Field(3600, ge=5)
    task_soft_time_limit: int = Field(300, ge=1)
    task_time_limit: int = Field(360, ge=2)
    face_task_soft_time_limit: int = Field(120, ge=1)
    face_task_time_limit: int = Field(150, ge=2)
    grading_task_soft_time_limit: int = Field(1200, ge=1)
    grading_task_time_limit: int = Field(1500, ge=2)
    worker_max_memory_per_child_kb: int = Field(1_500_000, ge=50_000)
    broker_connect_timeout: float = Field(2.0, gt=0)

    # Flower
    flower_user: str = ""
    flower_password: SecretStr | None = None
    flower_port: int = 5555

    # Logs: JSON for machines (default), console for a developer's terminal.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    # HTTP
    port: int = 8000
    cors_origins: list[str] = []

    @model_validator(mode="after")
    def _refuse_weak_secrets_outside_development(self) -> Settings:
        if self.environment == "production":
            secret = self.jwt_secret.get_secret_value()
            if secret == DEFAULT_JWT_SECRET or len(secret) < MIN_JWT_SECRET_LENGTH:
                raise ValueError(
                    "JWT_SECRET must be set to a random value of at least "
                    f"{MIN_JWT_SECRET_LENGTH} characters outside development "
                    '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
        if self.task_time_limit <= self.task_soft_time_limit:
            raise ValueError("TASK_TIME_LIMIT must exceed TASK_SOFT_TIME_LIMIT")
        longest = max(self.task_time_limit, self.face_task_time_limit, self.grading_task_time_limit)
        if self.broker_visibility_timeout <= longest:
            raise ValueError(
                "BROKER_VISIBILITY_TIMEOUT must exceed the longest hard task time limit, "
                "or Redis redelivers tasks that are still running"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
