"""Where rules live: services raise domain errors from common (the API maps them to HTTP in
api/errors.py alone), common depends on neither api nor worker, and services take values,
never callbacks into the router (an upload is read by the route after the service allows it).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import api.services
from api.errors import STATUS_OF_KIND, headers_of, status_of
from common import errors

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_services_raise_domain_errors_not_http_ones():
    offenders = {
        p.name: sorted(m for m in _imports(p) if m == "api.errors" or m.startswith("fastapi"))
        for p in sorted((ROOT / "api" / "services").glob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_common_imports_neither_api_nor_worker():
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m for m in _imports(p) if m.split(".")[0] in ("api", "worker")
        )
        for p in sorted((ROOT / "common").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _domain_kinds() -> list[type[errors.DomainError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.DomainError)
    ]


def test_every_domain_error_kind_has_its_http_status():
    assert set(_domain_kinds()) - {errors.DomainError} <= STATUS_OF_KIND.keys()
    assert {status_of(kind("x")) for kind in STATUS_OF_KIND} == set(STATUS_OF_KIND.values())


@pytest.mark.parametrize(
    ("error", "headers"),
    [
        (errors.Unauthorized(), {"WWW-Authenticate": "Bearer"}),
        (errors.Conflict("busy", retry_after=2), {"Retry-After": "2"}),
        (errors.NotFound("gone"), {}),
    ],
)
def test_http_headers_follow_from_the_error(error, headers):
    assert headers_of(error) == headers


def _service_functions():
    for info in pkgutil.iter_modules(api.services.__path__):
        module = importlib.import_module(f"api.services.{info.name}")
        for name, fn in vars(module).items():
            public = not name.startswith("_")
            if public and inspect.iscoroutinefunction(fn) and fn.__module__ == module.__name__:
                yield f"{info.name}.{name}", fn


def test_services_take_no_callbacks():
    callbacks = {
        name: param.name
        for name, fn in _service_functions()
        for param in inspect.signature(fn).parameters.values()
        if any(w in str(param.annotation) for w in ("Callable", "Awaitable", "ReadUpload"))
    }
    assert callbacks == {}
