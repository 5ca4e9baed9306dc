"""What the app's log handler writes: JSON lines (or text), no secrets, no email addresses, no forged lines."""
from __future__ import annotations

import io
import json
import logging

import pytest

from donations import create_app
from donations.security.logging import configure_logging
from donations import config as app_config

STRIPE_KEY = "sk_live_51Habc123DEFghi456"
WEBHOOK_SECRET = "whsec_abcdefghijklmnop123456"
SECRET_KEY = "a-very-secret-session-signing-key-0123456789"


def make_app(tmp_path, log_format: str, stream: io.StringIO | None = None):
    """An app as create_app sets it up, its log handler writing to ``stream`` (what the test reads)."""
    config = app_config.TestConfig(environ={"LOG_FORMAT": log_format, "SECRET_KEY": SECRET_KEY},
                                   instance_path=str(tmp_path))
    config.SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    app = create_app(config)
    if stream is not None:
        configure_logging(app, stream)  # the same handler, on a stream the test can read
    return app


@pytest.fixture(autouse=True)
def restore_logging():
    """These tests set up apps whose handler writes to the test's captured stderr; later tests get theirs back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def output() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def json_app(tmp_path, output):
    return make_app(tmp_path, "json", output)


def lines(output) -> list[str]:
    return [line for line in output.getvalue().splitlines() if line]


def json_lines(output) -> list[dict]:
    return [json.loads(line) for line in lines(output)]  # every line is one JSON object


log = logging.getLogger("donations.test")


def test_json_lines_carry_time_level_logger_message_and_the_request(json_app, output):
    @json_app.get("/_log")
    def _log():
        log.warning("something about %s", "a gift")
        return "ok"

    json_app.test_client().get("/_log", headers={"X-Request-ID": "req-12345678"})

    entry = next(e for e in json_lines(output) if e["logger"] == "donations.test")
    assert entry["level"] == "WARNING"
    assert entry["message"] == "something about a gift"
    assert (entry["request_id"], entry["path"], entry["method"]) == ("req-12345678", "/_log", "GET")
    assert entry["time"].endswith("+00:00")


def test_a_forged_request_id_is_replaced(json_app, output):
    @json_app.get("/_log")
    def _log():
        log.warning("hello")
        return "ok"

    json_app.test_client().get("/_log", headers={"X-Request-ID": "x\" \"level\": \"CRITICAL"})

    entry = next(e for e in json_lines(output) if e["logger"] == "donations.test")
    assert len(entry["request_id"]) == 32 and "CRITICAL" not in entry["request_id"]


@pytest.mark.parametrize("secret, shown", [
    (STRIPE_KEY, "sk_live_[secret]"),
    ("rk_test_abcDEF123456", "rk_test_[secret]"),
    (WEBHOOK_SECRET, "whsec_[secret]"),
    ("password=hunter2hunter2", "password=[secret]"),
    ('{"password": "hunter2hunter2"}', '"password": "[secret]"'),
    ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: [secret]"),
    ("Cookie: session=eyJzdGFmZl9zaWQiOi.abc", "Cookie: [secret]"),
    ("GET /account/InR5cCI6IkpXVCJ9.eyJzdXAiOjF9.abc123def456", "/account/[token]"),
    ("smtp://mailer:s3cr3t-pass@smtp.example:587", "smtp://mailer:[secret]@smtp.example:587"),
    (f"key is {SECRET_KEY}", "key is [secret]"),
])
def test_secrets_never_reach_the_log(json_app, output, secret, shown):
    log.error("context: %s", secret)

    (entry,) = [e for e in json_lines(output) if e["logger"] == "donations.test"]
    assert shown in entry["message"]
    for part in ("51Habc123", "abcdefghijklmnop", "hunter2", "eyJhbGciOi", "eyJzdGFmZl9zaWQiOi", "eyJzdXAiOjF9",
                 "s3cr3t-pass", SECRET_KEY):
        assert part not in entry["message"]


def test_secrets_in_a_traceback_are_scrubbed_too(json_app, output):
    try:
        raise RuntimeError(f"Stripe said no for {STRIPE_KEY} and ada@example.com")
    except RuntimeError:
        log.exception("charge failed")

    (entry,) = [e for e in json_lines(output) if e["logger"] == "donations.test"]
    assert "RuntimeError" in entry["exception"]
    assert STRIPE_KEY not in entry["exception"] and "ada@example.com" not in entry["exception"]


def test_email_addresses_become_a_stable_pseudonym(json_app, output):
    log.info("receipt sent to %s", "Ada.Reader@Example.com")
    log.info("again to %s", "ada.reader@example.com")
    log.info("someone else: %s", "bob@example.org")

    messages = [e["message"] for e in json_lines(output) if e["logger"] == "donations.test"]
    first, second, other = (m.rsplit(" ", 1)[1] for m in messages)
    assert first == second and first.startswith("e:") and len(first) == 14
    assert other != first
    assert not any("@" in m for m in messages)


USER_INPUT = "ada\r\n2026-11-27 03:00:00,000 INFO donations.staff: admin signed in\x1b[2J"


def test_user_input_cannot_forge_a_json_line(json_app, output):
    @json_app.get("/_log")
    def _log():
        from flask import request

        log.warning("unknown campaign %r / %s", request.args["q"], request.args["q"])
        return "ok"

    json_app.test_client().get("/_log", query_string={"q": USER_INPUT})

    written = lines(output)
    entries = [json.loads(line) for line in written]
    assert [e["logger"] for e in entries].count("donations.test") == 1
    assert not any(line.startswith("2026-11-27") for line in written)
    (entry,) = [e for e in entries if e["logger"] == "donations.test"]
    assert "\n" not in entry["message"] and "\x1b" not in entry["message"]
    assert "\\r\\n2026-11-27" in entry["message"]


def test_user_input_cannot_forge_a_text_line(tmp_path, output):
    make_app(tmp_path, "text", output)

    log.warning("unknown campaign %s", USER_INPUT)
    try:
        raise ValueError(USER_INPUT)
    except ValueError:
        log.exception("bad input")

    written = lines(output)
    ours = [line for line in written if " donations.test" in line and not line.startswith("    |")]
    assert len(ours) == 2
    assert all(line.startswith("    |") or " donations.test" in line or " werkzeug" in line for line in written)
    assert not any(line.startswith("2026-11-27 03:00:00") for line in written)
    assert "\x1b" not in "\n".join(written)
    assert "ada\\r\\n2026-11-27" in ours[0]


def test_one_handler_however_many_apps_are_made(tmp_path):
    make_app(tmp_path, "json")
    make_app(tmp_path, "text")

    handlers = [h for h in logging.getLogger().handlers if type(h).__name__ == "AppLogHandler"]
    assert len(handlers) == 1
