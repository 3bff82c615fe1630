"""Every setting is documented in .env.example and the README, and the production guard holds."""

from __future__ import annotations

import re

import pytest
from helpers import ROOT
from pydantic import ValidationError

from common.settings import DEFAULT_JWT_SECRET, Settings


def test_every_setting_is_in_env_example_and_readme():
    env_example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert re.search(rf"^#? ?{name.upper()}=", env_example, re.M), name
        assert f"`{name.upper()}`" in readme, name


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", [DEFAULT_JWT_SECRET, "short-secret"])
def test_refuses_default_or_short_jwt_secret_outside_development(environment, secret):
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment=environment, jwt_secret=secret)


def test_development_accepts_the_default_secret():
    assert Settings(environment="development").environment == "development"


def test_visibility_timeout_must_exceed_hard_limits():
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(broker_visibility_timeout=100, task_time_limit=200, task_soft_time_limit=150)
