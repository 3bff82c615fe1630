"""What each process needs before it may start (Settings.production_problems)."""

from __future__ import annotations

import pytest

from common.settings import Settings

SECRET = "s" * 40


@pytest.mark.parametrize(
    ("values", "api_ok", "worker_ok"),
    [
        ({"environment": "development"}, True, True),  # scanning skipped, said at start
        ({"environment": "production"}, False, False),
        ({"environment": "production", "metrics_token": "m"}, True, False),
        ({"environment": "production", "clamd_url": "tcp://clamav:3310"}, False, True),
        ({"environment": "production", "virus_scan": "off"}, False, True),
        ({"environment": "development", "virus_scan": "on"}, True, False),
        ({"environment": "test", "virus_scan": "on", "clamd_url": "/run/c.sock"}, True, True),
    ],
)
def test_production_problems(values, api_ok, worker_ok):
    settings = Settings(jwt_secret=SECRET, **values)
    assert (settings.production_problems("api") == []) is api_ok
    assert (settings.production_problems("worker") == []) is worker_ok


def test_virus_scan_off_wins_over_a_configured_daemon():
    settings = Settings(clamd_url="tcp://clamav:3310", virus_scan="off")
    assert settings.virus_scanner == "skipped"
    assert Settings(clamd_url="tcp://clamav:3310").virus_scanner == "clamd"
    assert Settings(clamd_url="").virus_scanner == "skipped"
