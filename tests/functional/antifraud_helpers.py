"""Apps and forms for the anti-fraud tests: an app built from its own environ (TRUSTED_PROXIES, limits), joined
to the test's rolled-back transaction, and a donation form filled in as a browser would."""
from __future__ import annotations

import os
import time
import re
import uuid
from contextlib import contextmanager

import pytest

from donations import create_app
from donations.config import Config, TestConfig
from donations.extensions import db
from donations.security import antifraud
from tests.conftest import reset_limits

#: The production defaults of the checkout limits and the fill time (what a deployment runs with).
PRODUCTION = Config(environ={})
PRODUCTION_DEFENCES = {
    "CHECKOUT_LIMIT_PER_IP": PRODUCTION.CHECKOUT_LIMIT_PER_IP,
    "CHECKOUT_LIMIT_PER_EMAIL": PRODUCTION.CHECKOUT_LIMIT_PER_EMAIL,
    "CHECKOUT_LIMIT_GLOBAL": PRODUCTION.CHECKOUT_LIMIT_GLOBAL,
    "FORM_MIN_SECONDS": str(PRODUCTION.FORM_MIN_SECONDS),
}


@contextmanager
def app_with(session_app, connection, instance_path: str, **environ: str):
    """A second app built by create_app from ``environ`` on the test database, inside the test's transaction
    (its commits roll back with the test). The rate-limit storage starts empty."""
    config = TestConfig(environ={**os.environ, **environ}, instance_path=instance_path)
    config.SQLALCHEMY_DATABASE_URI = session_app.config["SQLALCHEMY_DATABASE_URI"]
    other = create_app(config)
    engines = db._app_engines[other]
    own = engines[None]
    engines[None] = connection
    reset_limits()
    try:
        yield other
    finally:
        with other.app_context():
            db.session.remove()
        engines[None] = own
        own.dispose()
        reset_limits()


def hidden(html: str, name: str) -> str:
    for tag in re.findall(r"<input[^>]*>", html):
        if f'name="{name}"' in tag:
            match = re.search(r'value="([^"]*)"', tag)
            return match.group(1) if match else ""
    raise AssertionError(f"no input named {name!r} in the page")


def form_page(client, **environ) -> str:
    return client.get("/donate", environ_base=environ).get_data(as_text=True)


def filled_form(html: str, **overrides) -> dict:
    """What the reader's browser posts from the page ``html``."""
    data = {"csrf_token": hidden(html, "csrf_token"), "token": str(uuid.uuid4()), "started": hidden(html, "started"),
            "homepage": "", "campaign": "default", "amount": "25.00", "custom_amount": "", "currency": "EUR",
            "frequency": "one_off", "email": "reader@example.com", "name": "Ada Reader",
            "article_url": "https://publisher.example/news/1"}
    data.update(overrides)
    return data


API = "/api/v1/checkout-sessions"


def api_body(**overrides) -> dict:
    return {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
            "email": "reader@example.com", **overrides}


class CountingGateway:
    """The app's gateway, counting how often a checkout session is asked for."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name = inner.name

    def create_checkout_session(self, request):
        self.calls += 1
        return self.inner.create_checkout_session(request)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def gateway(app, client, monkeypatch):
    counting = CountingGateway(app.extensions["payment_gateway"])
    monkeypatch.setitem(app.extensions, "payment_gateway", counting)
    return counting


@pytest.fixture(autouse=True)
def fresh_attack_mode(app):
    with app.app_context():
        antifraud.forget_attack_mode()
    yield
    with app.app_context():
        antifraud.forget_attack_mode()


class FormClock:
    """The clock the fill-time check reads (``time`` in donations.security.antifraud), standing still until the
    test moves it: "sent back at once" and "after a human pause" do not depend on how fast the machine is."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:  # the attack-mode cache's clock runs as usual
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def form_clock(monkeypatch) -> FormClock:
    clock = FormClock()
    monkeypatch.setattr(antifraud, "time", clock)
    return clock
