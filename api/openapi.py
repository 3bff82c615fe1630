"""The contract that client generators read from /openapi.json, shaped in one place.

- Operation ids are `{tag}-{function}` (`auth-login`, `users-me`), set for every route by
  `operation_id` (FastAPI's `generate_unique_id_function`), so generated clients get stable,
  readable names rather than `login_v1_auth_login_post`.
- Every error response a route can give is documented with the one `ErrorBody` schema, and the
  operation's description lists the `error.code` values per status: the generic ones follow
  from what the route is (authenticated, has parameters, under /v1, answers 202) and
  `api.error_catalog.ROUTE_ERRORS` adds each route's own codes. `document_errors` applies
  both to the generated schema; routes keep declaring only what is particular to them.
- Models that a route documents by hand (`openapi_extra`) are registered with `model_ref`,
  so they appear once under components instead of inline and unnamed.

`python -m api.openapi [FILE]` writes the schema (for generators) without starting a server.
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.error_catalog import ROUTE_ERRORS
from api.errors import STATUS_CODES, ErrorBody

REF_PREFIX = "#/components/schemas/"
ERROR_REF = f"{REF_PREFIX}{ErrorBody.__name__}"
# FastAPI's own 422 body; ours is ErrorBody (api/errors.py turns validation errors into it).
FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")

# Codes a route gives by what it is, whatever it does (see api/errors.py, api/deps.py).
AUTH_CODES = ("unauthorized", "invalid_token")  # no, bad, expired or revoked bearer token
SCOPE_CODES = ("forbidden",)  # the role lacks a scope the route requires
VALIDATION_CODES = ("validation_error",)  # malformed path, query, header or body
RATE_LIMIT_CODES = ("rate_limited",)  # api/ratelimit.py, every /v1 route
# every /v1 route (database_busy: no pooled connection within DB_POOL_TIMEOUT)
UNAVAILABLE_CODES = ("database_unavailable", "database_busy", "dependency_unavailable")
QUEUE_CODES = ("queue_unavailable",)  # routes that enqueue work (they answer 202)
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}

_registered: dict[str, type[BaseModel]] = {}


def operation_id(route: APIRoute) -> str:
    """`{first tag}-{function name}`; tests/api/test_openapi_contract.py checks uniqueness."""
    tag = route.tags[0] if route.tags else "untagged"
    return f"{getattr(tag, 'value', tag)}-{route.name}"


def model_ref(model: type[BaseModel]) -> dict[str, str]:
    """A `$ref` to `model` for hand-written OpenAPI fragments; the model is added to the
    components when the schema is built."""
    _registered[model.__name__] = model
    return {"$ref": f"{REF_PREFIX}{model.__name__}"}


def install_openapi(app: FastAPI) -> None:
    """Build the schema once, then post-process it (see the module docstring)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _add_models(schema, [ErrorBody, *_registered.values()])
            document_errors(schema)
            _name_plain_bodies(schema)
            _drop_unreferenced(schema, FASTAPI_422_SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_models(schema: dict[str, Any], models: list[type[BaseModel]]) -> None:
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template=REF_PREFIX + "{model}"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)


def error_statuses(path: str, operation: dict[str, Any]) -> dict[int, list[str]]:
    """Status -> `error.code` values this operation can answer with."""
    op_id = operation["operationId"]
    codes: dict[int, list[str]] = {}

    def add(status: int, *values: str) -> None:
        listed = codes.setdefault(status, [])
        listed.extend(v for v in values if v not in listed)

    for status in operation.get("responses", {}):
        if str(status).isdigit() and int(status) >= 400:
            codes.setdefault(int(status), [])
    if operation.get("security"):
        add(401, *AUTH_CODES)
        if any(scopes for requirement in operation["security"] for scopes in requirement.values()):
            add(403, *SCOPE_CODES)
    if operation.get("parameters") or operation.get("requestBody"):
        add(422, *VALIDATION_CODES)
    if path.startswith("/v1/"):
        add(429, *RATE_LIMIT_CODES)
        add(503, *UNAVAILABLE_CODES)
        if "202" in operation.get("responses", {}):
            add(503, *QUEUE_CODES)
    for status, values in ROUTE_ERRORS.get(op_id, {}).items():
        add(status, *values)
    for status, listed in codes.items():
        if not listed:  # declared by the route without codes of its own: the status's default
            add(status, STATUS_CODES.get(status, "error"))
    return dict(sorted(codes.items()))


def _is_route_specific(response: dict[str, Any]) -> bool:
    """A documented error status whose body is not an error (e.g. /health's 503 report)."""
    for media in response.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        if ref and ref != ERROR_REF and ref.removeprefix(REF_PREFIX) not in FASTAPI_422_SCHEMAS:
            return True
    return False


def _code_list(values: list[str]) -> str:
    quoted = [f"`{v}`" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def document_errors(schema: dict[str, Any]) -> None:
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            rows = []
            for status, values in error_statuses(path, operation).items():
                existing = responses.get(str(status), {})
                if _is_route_specific(existing):
                    continue
                phrase = HTTPStatus(status).phrase
                headers = {
                    **existing.get("headers", {}),
                    **(RETRY_AFTER if status in (429, 503) else {}),
                }
                responses[str(status)] = {
                    **({"headers": headers} if headers else {}),
                    "description": f"{phrase}: `error.code` is {_code_list(values)}.",
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                }
                rows.append(f"| {status} | {', '.join(f'`{v}`' for v in values)} |")
            if rows:
                table = "\n".join(["| status | `error.code` |", "| --- | --- |", *rows])
                operation["description"] = (
                    f"{operation.get('description', '').rstrip()}\n\n"
                    f"**Errors** (body `ErrorBody`):\n\n{table}"
                )
            operation["responses"] = dict(sorted(responses.items()))


def _name_plain_bodies(schema: dict[str, Any]) -> None:
    """Non-JSON bodies documented without a schema (CSV, metrics text) are strings."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                for media_type, media in response.get("content", {}).items():
                    if not media.get("schema") and "json" not in media_type:
                        media["schema"] = {"type": "string"}


def _drop_unreferenced(schema: dict[str, Any], names: tuple[str, ...]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name in names:
        if name in components:
            rest = {k: v for k, v in components.items() if k not in names}
            if f'"{REF_PREFIX}{name}"' not in json.dumps({**schema, "components": rest}):
                del components[name]


def main(argv: list[str]) -> None:
    from api.main import create_app

    text = json.dumps(create_app().openapi(), indent=2) + "\n"
    if len(argv) > 1:
        with open(argv[1], "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv)
