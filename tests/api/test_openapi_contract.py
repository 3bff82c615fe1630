"""The contract client generators read (/openapi.json): stable operation ids, one error body
and one 202 body, named schemas, a login body generators can type. The checks run over every
operation, so routes added later are held to the same rules."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from helpers import PASSWORD
from openapi_spec_validator import validate

from api.error_catalog import ROUTE_ERRORS
from api.openapi import install_openapi, operation_id

REF = "#/components/schemas/"
ERROR_BODY = f"{REF}ErrorBody"
# Documented error statuses whose body is not ErrorBody, on purpose.
OWN_ERROR_BODIES = {("health-health", "503"): f"{REF}HealthReport"}
# Probes that answer nothing but their own report.
WITHOUT_ERRORS = {"health-health", "health-live"}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def id_problems(app: FastAPI) -> list[str]:
    schema = app.openapi()
    problems = []
    seen: dict[str, str] = {}
    for method, path, op in operations(schema):
        where = f"{method.upper()} {path}"
        op_id = op.get("operationId", "")
        if op_id in seen:
            problems.append(f"{where}: id {op_id!r} also used by {seen[op_id]}")
        seen[op_id] = where
        if not re.fullmatch(r"[a-z]+-[a-z][a-z0-9_]*", op_id):
            problems.append(f"{where}: id {op_id!r} is not {{tag}}-{{function}}")
        elif op_id.split("-")[0] != (op.get("tags") or [""])[0]:
            problems.append(f"{where}: id {op_id!r} does not start with its tag")
    for route in app.routes:
        listed = isinstance(route, APIRoute) and route.include_in_schema
        if listed and route.unique_id == generate_unique_id(route):
            problems.append(f"{route.path}: FastAPI's default id {route.unique_id!r}")
    return problems


def test_the_schema_is_valid_openapi(app):
    validate(copy.deepcopy(app.openapi()))


def test_operation_ids_are_tag_function_and_unique(app):
    assert not id_problems(app)
    ids = {op["operationId"] for _, _, op in operations(app.openapi())}
    assert {"auth-login", "users-me", "submissions-submit", "tasks-get_task"} <= ids


@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_the_id_check_fails_on_duplicates_and_defaults():
    # The check above must be able to fail: a duplicate function name under one tag, and a
    # route whose id is FastAPI's default.
    bad = FastAPI(generate_unique_id_function=operation_id)
    install_openapi(bad)

    @bad.get("/a", tags=["things"], summary="a", description="a")
    async def read() -> None: ...

    @bad.get("/b", tags=["things"], summary="b", description="b", name="read")
    async def read_b() -> None: ...

    @bad.get("/c", tags=["things"], generate_unique_id_function=generate_unique_id)
    async def other() -> None: ...

    problems = id_problems(bad)
    assert any("also used by" in p for p in problems), problems
    assert any("default id" in p for p in problems), problems


def test_every_202_answers_task_accepted(app):
    schema = app.openapi()
    accepted = [(m, p, op) for m, p, op in operations(schema) if "202" in op["responses"]]
    assert len(accepted) >= 6
    for method, path, op in accepted:
        response = op["responses"]["202"]
        body = response["content"]["application/json"]["schema"]
        assert body == {"$ref": f"{REF}TaskAccepted"}, f"{method} {path}"
        assert "Location" in response.get("headers", {}), f"{method} {path}"
    task_accepted = schema["components"]["schemas"]["TaskAccepted"]
    assert set(task_accepted["required"]) == {"task_id", "status"}


def error_problems(schema: dict[str, Any]) -> list[str]:
    problems = []
    for method, path, op in operations(schema):
        where, op_id = f"{method.upper()} {path}", op["operationId"]
        errors = {s: r for s, r in op["responses"].items() if s.isdigit() and int(s) >= 400}
        if not errors and op_id not in WITHOUT_ERRORS:
            problems.append(f"{where}: no error responses documented")
        for status, response in errors.items():
            ref = response.get("content", {}).get("application/json", {}).get("schema", {})
            if ref.get("$ref") != OWN_ERROR_BODIES.get((op_id, status), ERROR_BODY):
                problems.append(f"{where}: {status} is not ErrorBody: {ref}")
            elif ref.get("$ref") == ERROR_BODY:
                codes = re.findall(r"`([a-z_]+)`", response["description"])
                table_row = f"| {status} | {', '.join(f'`{c}`' for c in codes)} |"
                if not codes or table_row not in op["description"]:
                    problems.append(f"{where}: {status} codes not listed in the description")
        if op.get("security") and "401" not in errors:
            problems.append(f"{where}: authenticated but no 401")
        if path.startswith("/v1/") and not {"429", "503"} <= set(errors):
            problems.append(f"{where}: no 429/503 (rate limit, database down)")
    if {"HTTPValidationError", "ValidationError"} & set(schema["components"]["schemas"]):
        problems.append("FastAPI's HTTPValidationError is documented; the API answers ErrorBody")
    return problems


def test_every_error_response_is_error_body_with_its_codes(app):
    schema = app.openapi()
    assert not error_problems(schema)
    login = schema["paths"]["/v1/auth/login"]["post"]
    assert "| 401 | `invalid_credentials` |" in login["description"]
    submit = schema["paths"]["/v1/tests/{test_id}/submit"]["post"]
    assert "`attempt_expired`" in submit["responses"]["409"]["description"]
    assert "Retry-After" in submit["responses"]["503"]["headers"]


def test_the_error_check_fails_on_an_undocumented_error():
    schema = {
        "paths": {
            "/v1/x": {
                "get": {
                    "operationId": "x-get",
                    "description": "",
                    "security": [{"OAuth2PasswordBearer": []}],
                    "responses": {
                        "200": {},
                        "404": {
                            "description": "",
                            "content": {"application/json": {"schema": {"$ref": "#/x"}}},
                        },
                    },
                }
            }
        },
        "components": {"schemas": {"HTTPValidationError": {}}},
    }
    problems = error_problems(copy.deepcopy(schema))
    assert len(problems) == 4, problems


def test_error_catalog_names_live_operations(app):
    ids = {op["operationId"] for _, _, op in operations(app.openapi())}
    assert not set(ROUTE_ERRORS) - ids


def test_success_bodies_are_named_schemas(app):
    for method, path, op in operations(app.openapi()):
        for status, response in op["responses"].items():
            if not status.startswith("2"):
                continue
            for media_type, media in response.get("content", {}).items():
                where = f"{method.upper()} {path} {status} {media_type}"
                body = media.get("schema")
                assert body, where
                if "json" not in media_type:
                    assert body.get("type") == "string", where
                    continue
                refs = body.get("oneOf") or [body.get("items", body)]
                assert all(set(r) == {"$ref"} for r in refs), f"{where}: inline schema {body}"


def test_login_documents_the_json_body_only(app):
    body = app.openapi()["paths"]["/v1/auth/login"]["post"]["requestBody"]
    assert body["content"] == {"application/json": {"schema": {"$ref": f"{REF}LoginRequest"}}}
    assert "LoginRequest" in app.openapi()["components"]["schemas"]


async def test_login_still_accepts_json_and_the_oauth2_form(client, student):
    form = {"grant_type": "password", "username": student.username, "password": PASSWORD}
    r = await client.post("/v1/auth/login", data=form)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"].lower() == "bearer"
    r = await client.post(
        "/v1/auth/login", json={"username": student.username, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text


async def test_202_bodies_are_task_accepted(client, admin, auth_for):
    # Enqueued without a worker: the echo job waits in the queue, so cancel ends it at once.
    h = auth_for(admin)
    r = await client.post(
        "/v1/tasks/diagnostics/echo", json={"payload": 1, "delay_seconds": 60}, headers=h
    )
    assert r.status_code == 202, r.text
    assert set(r.json()) == {"task_id", "status"} and r.json()["status"] == "queued"
    task_id = r.json()["task_id"]
    assert r.headers["location"] == f"/v1/tasks/{uuid.UUID(task_id)}"
    r = await client.post(f"/v1/tasks/{task_id}/cancel", headers=h)
    assert r.status_code == 202, r.text
    # Canceled at once while queued; a worker that already took it stops at its checkpoint.
    assert r.json()["task_id"] == task_id and set(r.json()) == {"task_id", "status"}
    assert r.json()["status"] in ("canceled", "started", "progress")
    assert r.headers["location"] == f"/v1/tasks/{task_id}"
