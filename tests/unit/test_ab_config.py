"""A/B settings: the defaults the issue names, and values that would never or always name a winner refused."""
from __future__ import annotations

import pytest

from donations.config import Config, ConfigError


def config(tmp_path, **environ) -> Config:
    return Config(environ=environ, instance_path=str(tmp_path / "instance"))


def test_defaults(tmp_path):
    c = config(tmp_path)
    assert (c.AB_MIN_IMPRESSIONS, c.AB_MIN_GIFTS, c.AB_WINNER_PROBABILITY) == (1000, 10, 0.95)


@pytest.mark.parametrize("environ, message", [
    ({"AB_WINNER_PROBABILITY": "0.4"}, "AB_WINNER_PROBABILITY"),
    ({"AB_WINNER_PROBABILITY": "1"}, "AB_WINNER_PROBABILITY"),
    ({"AB_MIN_IMPRESSIONS": "-1"}, "AB_MIN_IMPRESSIONS"),
    ({"AB_MIN_GIFTS": "-5"}, "AB_MIN_GIFTS"),
])
def test_bad_values_are_refused_at_start(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, **environ).validate()
