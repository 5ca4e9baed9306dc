"""Staff sign-in settings: the session cookie's flags and the production Argon2 profile."""
from __future__ import annotations

from argon2 import PasswordHasher, Type, profiles

from donations import config as config_module
from donations.config import Config

#: OWASP Password Storage Cheat Sheet, Argon2id minimum: 19 MiB of memory, 2 iterations, 1 degree of parallelism.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME = 2


def config(tmp_path, **environ) -> Config:
    return Config(environ=environ, instance_path=str(tmp_path / "instance"))


def test_session_cookie_is_secure_when_public_url_is_https(tmp_path):
    assert config(tmp_path, PUBLIC_URL="https://donate.publisher.example").SESSION_COOKIE_SECURE is True


def test_session_cookie_is_not_secure_on_plain_http_in_development(tmp_path):
    assert config(tmp_path, PUBLIC_URL="http://127.0.0.1:5000").SESSION_COOKIE_SECURE is False


def test_session_cookie_is_secure_in_production_whatever_the_url(tmp_path):
    assert config(tmp_path, DONATIONS_ENV="production", PUBLIC_URL="http://internal").SESSION_COOKIE_SECURE is True


def test_session_cookie_is_httponly_and_samesite_lax(tmp_path):
    settings = config(tmp_path)
    assert settings.SESSION_COOKIE_HTTPONLY is True
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"


def test_staff_timeouts_come_from_the_environment(tmp_path):
    settings = config(tmp_path, STAFF_ABSOLUTE_HOURS="8", STAFF_IDLE_MINUTES="20")
    assert (settings.STAFF_IDLE_MINUTES, settings.STAFF_ABSOLUTE_HOURS) == (20, 8)


def test_staff_timeouts_default_to_30_minutes_idle_and_12_hours_in_all(tmp_path):
    settings = config(tmp_path)
    assert (settings.STAFF_IDLE_MINUTES, settings.STAFF_ABSOLUTE_HOURS) == (30, 12)


def test_production_argon2_profile_is_rfc_9106_low_memory(tmp_path):
    assert config(tmp_path).ARGON2_PROFILE == "RFC_9106_LOW_MEMORY"
    assert config(tmp_path, DONATIONS_ENV="production").ARGON2_PROFILE == "RFC_9106_LOW_MEMORY"


def test_production_argon2_profile_meets_owasp_minimums():
    params = getattr(profiles, Config(environ={}).ARGON2_PROFILE)
    assert params.type is Type.ID
    assert params.memory_cost >= OWASP_MIN_MEMORY_KIB
    assert params.time_cost >= OWASP_MIN_TIME
    assert params.parallelism >= 1


def test_production_argon2_profile_writes_argon2id_hashes_with_its_parameters():
    params = getattr(profiles, Config(environ={}).ARGON2_PROFILE)
    encoded = PasswordHasher.from_parameters(params).hash("correct horse battery staple")
    assert encoded.startswith(f"$argon2id$v=19$m={params.memory_cost},t={params.time_cost},p={params.parallelism}$")


def test_only_the_tests_use_the_cheapest_profile(tmp_path):
    assert config_module.TestConfig(environ={}, instance_path=str(tmp_path)).ARGON2_PROFILE == "CHEAPEST"
    assert Config(environ={}, instance_path=str(tmp_path)).ARGON2_PROFILE != "CHEAPEST"
