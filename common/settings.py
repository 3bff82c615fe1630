"""Settings for the API and the worker, read from the environment and `.env`.

One `Settings` object serves both processes so that they can never disagree about the
database, the broker or the queue names.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    # A request waits at most this long for a pooled connection, then gets 503 + Retry-After.
    db_pool_timeout: float = Field(30.0, gt=0, le=120)

    # Auth
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(14, ge=1, le=365)
    first_admin_username: str = "admin"
    # Argon2id cost of new hashes: OWASP Password Storage Cheat Sheet, 19 MiB, 2 passes, 1 lane.
    # Hashes made with another cost are replaced at their owner's next successful login.
    password_argon2_memory_kib: int = Field(19_456, ge=8, le=4_194_304)
    password_argon2_time_cost: int = Field(2, ge=1, le=100)
    password_argon2_lanes: int = Field(1, ge=1, le=64)
    # Password hashing runs on its own threads, PASSWORD_HASH_WORKERS per API process (0: half
    # the cores, at least 1), so a login storm cannot take every core from the other requests.
    # More than PASSWORD_HASH_QUEUE logins waiting in one process: 503 with Retry-After.
    password_hash_workers: int = Field(0, ge=0, le=64)
    password_hash_queue: int = Field(1000, ge=1, le=100_000)
    # Each API process keeps the (session, user) of recent requests this many seconds, so an
    # authenticated request costs no database round trip; logout, deactivation, deletion and
    # role changes drop the entries on every process at once (Redis pub/sub). The TTL bounds the
    # staleness should a message be lost. 0: read the database on every request.
    principal_cache_seconds: float = Field(5.0, ge=0, le=60)
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
    # Job leases (common.job_leases): a running job's process renews its lease every
    # JOB_HEARTBEAT_SECONDS for JOB_LEASE_SECONDS; the reapers (in every worker and API process)
    # look for expired leases as often. A job whose worker is lost runs again, until it has lost
    # JOB_MAX_ATTEMPTS runs: then it fails with `worker_lost`.
    job_lease_seconds: int = Field(30, ge=2, le=3600)
    job_heartbeat_seconds: int = Field(10, ge=1, le=1800)
    job_max_attempts: int = Field(3, ge=1, le=100)

    # Flower
    flower_user: str = ""
    flower_password: SecretStr | None = None
    flower_port: int = 5555

    # File uploads (common.files). Local disk under var_dir/files unless STORAGE_BACKEND=s3;
    # S3 credentials come from the usual AWS chain (env, profile, instance role).
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_root: Path | None = None  # None: var_dir / "files"
    storage_prefix: str = ""  # a folder under the root, or a key prefix inside the bucket
    s3_bucket: str = ""
    s3_endpoint_url: str | None = None  # set for MinIO or another S3-compatible store
    s3_region: str | None = None
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, le=5 * 1024**3)
    # Comma-separated or a JSON list; only types the content sniffer recognises.
    upload_allowed_types: Annotated[list[str], NoDecode] = [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    ]
    download_url_seconds: int = Field(900, ge=1, le=7 * 24 * 3600)  # signed-link lifetime
    # Empty: derived from JWT_SECRET with HMAC and a distinct label (common.files).
    file_signing_secret: SecretStr | None = None
    files_public_base_url: str = ""  # prefix of the API's signed links; "" gives a path
    clamd_url: str = ""  # unix:///run/clamav/clamd.ctl or tcp://host:3310
    clamd_timeout: float = Field(30.0, gt=0)
    # Virus scanning (see virus_scanner below): "auto" scans with ClamAV when CLAMD_URL is set
    # and, in production, requires it; "on" requires CLAMD_URL everywhere; "off" skips ClamAV
    # on purpose (files then carry virus_scan "skipped"). The type and image checks always run.
    virus_scan: Literal["auto", "on", "off"] = "auto"
    image_max_pixels: int = Field(40_000_000, ge=1)

    @field_validator("upload_allowed_types", mode="before")
    @classmethod
    def _split_types(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("upload_allowed_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        from common.scanning import ALLOWED_TYPES, normalize_type

        types = [normalize_type(t) or t for t in value]
        unknown = sorted({t for t in types if t not in ALLOWED_TYPES})
        if unknown:
            raise ValueError(
                f"unsupported upload types {unknown}; choose from {sorted(ALLOWED_TYPES)}"
            )
        return sorted(set(types))

    @model_validator(mode="after")
    def _check_file_storage(self) -> Settings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("S3_BUCKET must be set when STORAGE_BACKEND=s3")
        return self

    # Faces (attendance by face). A face matches when its distance to an enrollment is at most
    # FACE_TOLERANCE (face_recognition's default 0.6; same person 0.04-0.43 on the shared photos,
    # different people 0.70+). Uploads are read up to FACE_UPLOAD_MAX_BYTES and handed to the
    # biometrics worker through the database; the worker deletes each photo when its job ends
    # unless KEEP_FACE_PHOTOS. Images over FACE_MAX_IMAGE_PIXELS are refused before decoding.
    face_tolerance: float = Field(0.6, gt=0, le=2)
    face_upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    face_max_image_pixels: int = Field(50_000_000, ge=10_000, le=200_000_000)
    face_max_enrollments: int = Field(10, ge=1, le=100)
    keep_face_photos: bool = False
    # A student's own enrollment counts only once an instructor of one of their classes or an
    # admin approves it (the photo waits for them until the decision). Off: enrollments count
    # at once, for deployments that enroll in a supervised room.
    face_enrollment_approval: bool = True

    # Check-in by photo is open from CHECK_IN_EARLY_SECONDS before a test opens until it closes
    # (checked when the photo arrives and again when the worker records it).
    check_in_early_seconds: int = Field(900, ge=0, le=7 * 24 * 3600)

    # Tests and grading. A submit is still accepted SUBMISSION_GRACE_SECONDS after an attempt's
    # deadline or a test's close time (the click that raced the clock); a CSV import is stored
    # in the database for the worker, up to SUBMISSION_IMPORT_MAX_BYTES; the regrade job reads
    # and scores REGRADE_BATCH_SIZE submissions between progress reports, in
    # REGRADE_PROCESSES processes.
    submission_grace_seconds: int = Field(30, ge=0, le=600)
    submission_import_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    regrade_batch_size: int = Field(10_000, ge=100, le=1_000_000)
    # Processes scoring a big regrade in parallel (forked by the job); 0: one per CPU.
    regrade_processes: int = Field(0, ge=0, le=8)

    # Logs: JSON for machines (default), console for a developer's terminal.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    # Rate limits ("N/second|minute|hour"), per user when authenticated, else per address.
    # A class behind one NAT address must still be able to log in at once: the address limits
    # are generous. Password guessing (api.login_guard) is limited per username and address
    # (RATE_LIMIT_LOGIN_FAILURES), and per username over all addresses (RATE_LIMIT_LOGIN_USER;
    # an address the user logged in from before is exempt from that one).
    rate_limit_enabled: bool = True
    rate_limit_user: str = "600/minute"
    rate_limit_ip: str = "6000/minute"
    rate_limit_uploads: str = "30/minute"
    rate_limit_login_ip: str = "1200/minute"
    rate_limit_login_failures: str = "5/15minutes"
    rate_limit_login_user: str = "100/hour"

    # Response cache for frequent reads (test lists, test detail per audience, statistics).
    cache_enabled: bool = True
    cache_ttl_seconds: int = Field(300, ge=1, le=86_400)

    # Observability: /metrics needs `Authorization: Bearer <METRICS_TOKEN>` when the token is
    # set; production refuses to start the API without one. The same token (or an admin's
    # access token) shows /health's details.
    metrics_token: SecretStr | None = None
    health_check_timeout: float = Field(1.5, gt=0, le=10)

    # HTTP. CORS_ORIGINS: browser origins allowed to call the API (JSON list), none by default.
    port: int = 8000
    cors_origins: list[str] = []
    # Bodies of non-upload requests (JSON, forms); uploads have their own limits above.
    max_request_body_bytes: int = Field(1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (api.client_address):
    # comma-separated addresses or networks, "*" for any, "" for none. The same variable
    # configures gunicorn and uvicorn; its default is theirs (loopback). The API image sets "".
    forwarded_allow_ips: str = "127.0.0.1,::1"

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for item in value.split(","):
            item = item.strip()
            if item and item != "*":
                try:
                    ipaddress.ip_network(item)  # strict, as gunicorn checks it
                except ValueError as exc:
                    raise ValueError(f"FORWARDED_ALLOW_IPS: {exc}") from None
        return value

    @model_validator(mode="after")
    def _refuse_weak_secrets_outside_development(self) -> Settings:
        if self.environment != "development":
            secret = self.jwt_secret.get_secret_value()
            if secret == DEFAULT_JWT_SECRET or len(secret) < MIN_JWT_SECRET_LENGTH:
                raise ValueError(
                    "JWT_SECRET must be set to a random value of at least "
                    f"{MIN_JWT_SECRET_LENGTH} characters outside development "
                    '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
        if self.job_heartbeat_seconds * 2 > self.job_lease_seconds:
            raise ValueError(
                "JOB_LEASE_SECONDS must be at least twice JOB_HEARTBEAT_SECONDS, or one late "
                "heartbeat loses a live job's lease"
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

    @property
    def virus_scanner(self) -> Literal["clamd", "skipped"]:
        """Whether uploads go through ClamAV ("clamd") or skip it on purpose ("skipped")."""
        return "clamd" if self.clamd_url and self.virus_scan != "off" else "skipped"

    def production_problems(self, process: Literal["api", "worker"]) -> list[str]:
        """What this process needs and lacks before it may start; empty when ready.

        The one home of "what production requires beyond valid settings": `create_app` and
        the worker's start-up both ask it and refuse to start on any answer.
        """
        problems = []
        production = self.environment == "production"
        if process == "api" and production and not self.has_metrics_token:
            problems.append(
                "METRICS_TOKEN must be set in production: /metrics would otherwise be public "
                "(Prometheus sends it as `Authorization: Bearer <token>`)"
            )
        if (
            process == "worker"
            and self.virus_scan != "off"
            and not self.clamd_url
            and (production or self.virus_scan == "on")
        ):
            problems.append(
                "CLAMD_URL must point at a ClamAV daemon (e.g. tcp://clamav:3310), or set "
                "VIRUS_SCAN=off to serve uploads without a virus scan (marked 'skipped')"
            )
        return problems

    @property
    def has_metrics_token(self) -> bool:
        return bool(self.metrics_token and self.metrics_token.get_secret_value())


@lru_cache
def get_settings() -> Settings:
    return Settings()
