"""Settings of the job that books Stripe events whose webhook never arrived."""
from __future__ import annotations

import pytest

from donations.config import Config, ConfigError


def config(environ: dict, tmp_path) -> Config:
    return Config(environ=environ, instance_path=str(tmp_path / "instance"))


def test_the_sync_runs_every_five_minutes_and_first_looks_three_days_back_by_default(tmp_path):
    settings = config({}, tmp_path)
    settings.validate()
    assert settings.STRIPE_SYNC_INTERVAL_SECONDS == 300 and settings.STRIPE_SYNC_FIRST_DAYS == 3


def test_the_sync_settings_are_read_from_the_environment(tmp_path):
    settings = config({"STRIPE_SYNC_INTERVAL_SECONDS": "60", "STRIPE_SYNC_FIRST_DAYS": "30"}, tmp_path)
    settings.validate()
    assert settings.STRIPE_SYNC_INTERVAL_SECONDS == 60 and settings.STRIPE_SYNC_FIRST_DAYS == 30


@pytest.mark.parametrize("environ, message", [
    ({"STRIPE_SYNC_INTERVAL_SECONDS": "0"}, "STRIPE_SYNC_INTERVAL_SECONDS must be at least 1"),
    ({"STRIPE_SYNC_FIRST_DAYS": "31"}, "Stripe keeps events for 30 days"),
    ({"STRIPE_SYNC_FIRST_DAYS": "0"}, "STRIPE_SYNC_FIRST_DAYS must be from 1 to 30"),
])
def test_sync_settings_out_of_range_are_refused(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message):
        config(environ, tmp_path).validate()
