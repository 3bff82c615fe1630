"""Every runtime dependency we declare is used: a declared, never-imported library is dead weight
in every image and a reader's false lead (it suggests the code relies on it)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions

from helpers import ROOT

# Used without an import in our code: the place that relies on each, checked below.
INDIRECT = {
    "gunicorn": ("Dockerfile.api", "gunicorn"),  # the API server process
    "asyncpg": ("common/db.py", '"asyncpg"'),  # SQLAlchemy's async driver, named in the URL
    "email-validator": ("api/schemas/users.py", "EmailStr"),  # pydantic's EmailStr needs it
}


def _modules_by_distribution() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            out.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    return out


def test_every_runtime_dependency_is_imported_or_used_by_name() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["dependencies"]
    sources = "\n".join(
        path.read_text()
        for package in ("api", "common", "worker", "alembic")
        for path in (ROOT / package).rglob("*.py")
    )
    modules = _modules_by_distribution()
    unused = []
    for requirement in declared:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if name in INDIRECT:
            where, needle = INDIRECT[name]
            assert needle in (ROOT / where).read_text(), (name, where)
            continue
        imported = any(
            re.search(rf"^\s*(?:import|from)\s+{re.escape(module)}\b", sources, re.M)
            for module in modules.get(name, ())
        )
        if not imported:
            unused.append(name)
    assert unused == []
