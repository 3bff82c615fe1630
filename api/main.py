"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from api import job_reaper
from api.body_limit import BodyLimitMiddleware
from api.client_address import TrustedProxiesMiddleware
from api.errors import install_error_handlers
from api.observability import ObservabilityMiddleware
from api.openapi import install_openapi, operation_id
from api.ratelimit import RateLimitMiddleware
from api.resources import Resources
from api.routers import (
    attendance,
    auth,
    classes,
    faces,
    files,
    health,
    metrics,
    submissions,
    tasks,
    tests,
    users,
)
from common.logging import configure_logging
from common.settings import Settings, get_settings

DESCRIPTION = """
Backend of a multiple-choice exam system: users and roles, tests with questions and options,
instant scoring, bulk grading, attendance by hand or by face, and file uploads.

Authenticate with `POST /v1/auth/login` (or the **Authorize** button), then send
`Authorization: Bearer <access_token>`. Background work answers `202 {"task_id"}`: poll
`GET /v1/tasks/{task_id}`. Every error has the body `{"error": {"code", "message", "details"}}`.
"""

TAGS = [
    {"name": "auth", "description": "Log in, rotate tokens, log out."},
    {"name": "users", "description": "Accounts and roles."},
    {"name": "tasks", "description": "Background jobs and their status."},
    {"name": "tests", "description": "Authoring tests: questions, options, settings, key."},
    {"name": "classes", "description": "Groups of students that tests are assigned to."},
    {
        "name": "submissions",
        "description": "Attempts, submitting answers, results, bulk regrade and CSV "
        "import/export, statistics.",
    },
    {"name": "attendance", "description": "Attendance records, by hand or by face."},
    {"name": "faces", "description": "Face enrollment, check-in by photo, class photos."},
    {"name": "files", "description": "Uploads, scanned in the background; signed downloads."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings, process="api")
    problems = settings.production_problems("api")
    if problems:
        raise RuntimeError("the API refuses to start: " + "; ".join(problems))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = resources = Resources.create(settings)
        try:
            async with resources.principal_cache.running(), job_reaper.running(resources):
                yield
        finally:
            await app.state.resources.close()

    app = FastAPIOffline(
        title="MCQ System API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        generate_unique_id_function=operation_id,
    )
    install_error_handlers(app)
    install_openapi(app)

    v1 = APIRouter(prefix="/v1")
    for module in (auth, users, tasks, attendance, faces, files, tests, classes, submissions):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
            expose_headers=["X-Total-Count", "X-Request-ID", "ETag", "Location", "Retry-After"],
        )
    # Added last = outermost: the access log and metrics also see requests refused with 429
    # or 413, and every layer sees the client address the trusted proxies named.
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(ObservabilityMiddleware)
    app.add_middleware(TrustedProxiesMiddleware, settings=settings)
    return app
