"""What we ship: the images, the compose file and the release workflow, read as deployed."""

from __future__ import annotations

import yaml
from helpers import ROOT


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_api_image_keeps_one_access_log():
    """The app writes one structured access line per request; gunicorn's would repeat it."""
    cmd = [line for line in (ROOT / "Dockerfile.api").read_text().splitlines() if "CMD" in line]
    assert any("gunicorn" in line for line in cmd)
    assert not any("--access-logfile" in line or "--access-log" in line for line in cmd)


def test_compose_runs_a_scanner_and_closes_metrics():
    compose = load("docker-compose.yml")
    services = compose["services"]
    clamav = services["clamav"]
    assert clamav["image"].startswith("clamav/clamav:")
    assert "clamav-db:/var/lib/clamav" in clamav["volumes"] and clamav["healthcheck"]["test"]
    for name in ("api", "worker-default", "worker-biometrics"):
        env = services[name]["environment"]
        assert env["CLAMD_URL"] == "tcp://clamav:3310", name
        assert env["ENVIRONMENT"] == "production", name
    assert services["worker-default"]["depends_on"]["clamav"]["condition"] == "service_healthy"
    # Compose refuses to start the API without a metrics token (and the API would too).
    assert services["api"]["environment"]["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")


def test_version_tags_publish_both_images_to_ghcr():
    workflow = load(".github/workflows/ci.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "v*" in triggers["push"]["tags"]
    job = workflow["jobs"]["images"]
    assert job["permissions"]["packages"] == "write"
    assert {i["dockerfile"] for i in job["strategy"]["matrix"]["include"]} == {
        "Dockerfile.api",
        "Dockerfile.worker",
    }
    steps = {step.get("uses", "").split("@")[0]: step for step in job["steps"]}
    meta = steps["docker/metadata-action"]["with"]
    assert meta["images"].startswith("ghcr.io/")
    assert "type=semver,pattern={{version}}" in meta["tags"]
    assert "latest=${{ startsWith(github.ref, 'refs/tags/v') }}" in meta["flavor"]
    login = steps["docker/login-action"]["with"]
    assert login["registry"] == "ghcr.io" and login["password"] == "${{ secrets.GITHUB_TOKEN }}"
    build = steps["docker/build-push-action"]["with"]
    assert build["push"] == "${{ env.PUBLISH == 'true' }}"
    assert "refs/tags/v" in job["env"]["PUBLISH"]
    assert build["cache-from"].startswith("type=gha") and build["cache-to"].startswith("type=gha")
