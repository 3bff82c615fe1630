"""A Python client generated from the live /openapi.json (openapi-python-client, as a client
developer would run it) imports and drives a real server: log in, who am I, author a test,
submit as a student, start a regrade and poll its task."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from helpers import PASSWORD, start_api_server

PACKAGE = "mcq_client"  # the name README's example imports
README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(scope="module")
def generated_client(
    tmp_path_factory: pytest.TempPathFactory, test_env: dict[str, str]
) -> Iterator[tuple[str, Path]]:
    """The live server's base URL and the folder holding the package generated from its
    schema."""
    tmp_path = tmp_path_factory.mktemp("client")
    env = {**os.environ, **test_env, "RATE_LIMIT_ENABLED": "false"}
    proc, base = start_api_server(env, tmp_path / "api.log")
    try:
        schema = tmp_path / "openapi.json"
        schema.write_bytes(httpx.get(f"{base}/openapi.json").content)
        bin_dir = Path(sys.executable).parent  # the generator formats its output with ruff
        subprocess.run(
            [
                str(bin_dir / "openapi-python-client"),
                "generate",
                "--path",
                str(schema),
                "--meta",
                "none",
                "--output-path",
                str(tmp_path / PACKAGE),
                "--fail-on-warning",
            ],
            check=True,
            cwd=tmp_path,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
            capture_output=True,
            timeout=120,
        )
        sys.path.insert(0, str(tmp_path))
        yield base, tmp_path
    finally:
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        proc.terminate()
        proc.wait(10)


def _import(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_python_client_runs_a_whole_flow(
    generated_client, worker, make_user, test_env
) -> None:
    base, _ = generated_client
    package = importlib.import_module(PACKAGE)
    # Every generated operation module imports (the old login body broke its module).
    api = _import("api")
    for info in pkgutil.walk_packages(api.__path__, f"{PACKAGE}.api."):
        importlib.import_module(info.name)

    models = _import("models")
    auth_login = _import("api.auth.auth_login")
    users_me = _import("api.users.users_me")
    tests_create_test = _import("api.tests.tests_create_test")
    submissions_submit = _import("api.submissions.submissions_submit")
    submissions_regrade = _import("api.submissions.submissions_regrade")
    tasks_get_task = _import("api.tasks.tasks_get_task")

    instructor, student = make_user("instructor"), make_user("student")

    def log_in(user: Any) -> Any:
        tokens = auth_login.sync(
            client=package.Client(base_url=base),
            body=models.LoginRequest(username=user.username, password=PASSWORD),
        )
        assert isinstance(tokens, models.TokenPair), tokens
        return package.AuthenticatedClient(base_url=base, token=tokens.access_token)

    # A wrong password comes back as the typed error body with its documented code.
    refused = auth_login.sync_detailed(
        client=package.Client(base_url=base),
        body=models.LoginRequest(username=student.username, password="wrong password"),
    )
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.ErrorBody)
    assert refused.parsed.error.code == "invalid_credentials"

    teacher = log_in(instructor)
    me = users_me.sync(client=teacher)
    assert isinstance(me, models.UserOut) and me.username == instructor.username

    created = tests_create_test.sync(
        client=teacher,
        body=models.ExamCreate(
            title="Generated client quiz",
            questions=[
                models.QuestionCreate(
                    text="2 + 2?",
                    points=2,
                    options=[
                        models.OptionCreate(text="4", is_correct=True),
                        models.OptionCreate(text="5"),
                    ],
                )
            ],
        ),
    )
    assert isinstance(created, models.ExamOut), created
    question = created.questions[0]
    right = next(o for o in question.options if o.is_correct)

    pupil = log_in(student)
    result = submissions_submit.sync(
        test_id=created.id,
        client=pupil,
        body=models.SubmitRequest.from_dict({"answers": {str(question.id): right.id}}),
    )
    assert isinstance(result, models.SubmitResult), result
    assert result.score == 2

    accepted = submissions_regrade.sync(test_id=created.id, client=teacher)
    assert isinstance(accepted, models.TaskAccepted), accepted
    deadline = time.monotonic() + 60
    while True:
        job = tasks_get_task.sync(task_id=accepted.task_id, client=teacher)
        assert isinstance(job, models.JobOut), job
        if job.status in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert job.status == "succeeded", job
    assert job.kind == "grading.regrade"


def readme_example() -> str:
    section = README.read_text().split("## Clients", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example_runs(generated_client, make_user):
    base, _ = generated_client
    user = make_user("student")
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    namespace: dict[str, Any] = {"URL": base, "name": user.username, "pw": PASSWORD}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["me"].username == user.username and namespace["me"].role == "student"
