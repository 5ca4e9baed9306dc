"""The counting settings: defaults, and refusals that name the setting."""
import pytest

from donations import config as config_module
from donations.config import Config, ConfigError


def test_defaults_write_every_two_seconds_or_every_thousand_keys(tmp_path):
    config = Config(environ={}, instance_path=str(tmp_path))
    config.validate()
    assert (config.COUNT_FLUSH_SECONDS, config.COUNT_FLUSH_EVENTS, config.COUNT_BUFFER_MAX) == (2.0, 1000, 100000)


def test_tests_write_counts_within_the_request(tmp_path):
    assert config_module.TestConfig(environ={}, instance_path=str(tmp_path)).COUNT_FLUSH_SECONDS == 0


@pytest.mark.parametrize("environ, message", [
    ({"COUNT_FLUSH_SECONDS": "-1"}, "COUNT_FLUSH_SECONDS must be 0"),
    ({"COUNT_FLUSH_EVENTS": "0"}, "COUNT_FLUSH_EVENTS must be at least 1"),
    ({"COUNT_BUFFER_MAX": "10"}, "COUNT_BUFFER_MAX must be at least COUNT_FLUSH_EVENTS"),
])
def test_settings_that_would_lose_counts_are_refused(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message):
        Config(environ=environ, instance_path=str(tmp_path)).validate()


@pytest.mark.parametrize("name", ["COUNT_FLUSH_SECONDS", "COUNT_FLUSH_EVENTS", "COUNT_BUFFER_MAX"])
def test_a_setting_that_is_not_a_number_is_refused_by_name(tmp_path, name):
    with pytest.raises(ConfigError, match=f"{name} must be a"):
        Config(environ={name: "often"}, instance_path=str(tmp_path))
