"""The CAPTCHA, verified on the server against a real HTTP server on loopback playing the provider; fails closed."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from donations.security import antifraud, captcha
from tests.functional.antifraud_helpers import (  # noqa: F401 (fixtures)
    API,
    api_body,
    filled_form,
    form_page,
    fresh_attack_mode,
    gateway,
)

GOOD = "XXXX.DUMMY.TOKEN.XXXX"


class Provider:
    """What the provider answers next: ``status`` and ``body`` (bytes), or a delay beyond the timeout; ``hostname``
    is where the challenge was solved (PUBLIC_URL's host by default; None leaves it out of the answer)."""

    def __init__(self):
        self.status, self.body, self.delay, self.hostname = 200, None, 0.0, "donations.test"
        self.requests: list[dict] = []


@pytest.fixture
def provider():
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            state.requests.append(form)
            if state.delay:
                threading.Event().wait(state.delay)
            answer = {"success": form.get("response") == GOOD and form.get("secret") == "secret-key",
                      "error-codes": [] if form.get("response") == GOOD else ["invalid-input-response"]}
            if state.hostname is not None:
                answer["hostname"] = state.hostname
            body = state.body if state.body is not None else json.dumps(answer).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/siteverify"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def use_captcha(monkeypatch, app, provider_state, name="turnstile", mode="always"):
    for key, value in {"CAPTCHA_PROVIDER": name, "CAPTCHA_SITE_KEY": "site-key", "CAPTCHA_SECRET_KEY": "secret-key",
                       "CAPTCHA_MODE": mode, "CAPTCHA_VERIFY_URL": provider_state.url}.items():
        monkeypatch.setitem(app.config, key, value)


@pytest.mark.parametrize("name, field, script", [
    ("turnstile", "cf-turnstile-response", "https://challenges.cloudflare.com/turnstile/v0/api.js"),
    ("hcaptcha", "h-captcha-response", "https://js.hcaptcha.com/1/api.js"),
])
def test_the_form_shows_the_widget_and_a_solved_challenge_lets_the_gift_through(app, client, gateway, provider,
                                                                                monkeypatch, name, field, script):
    use_captcha(monkeypatch, app, provider, name)
    html = form_page(client, REMOTE_ADDR="192.0.2.9")
    assert f'<script src="{script}" async defer></script>' in html and 'data-sitekey="site-key"' in html

    response = client.post("/donate", data={**filled_form(html), field: GOOD}, environ_base={"REMOTE_ADDR": "192.0.2.9"})

    assert response.status_code == 303 and gateway.calls == 1
    sent = provider.requests[-1]
    assert sent["secret"] == "secret-key" and sent["response"] == GOOD and sent["remoteip"] == "192.0.2.9"
    assert (sent.get("sitekey") == "site-key") is (name == "hcaptcha")


def test_a_missing_or_wrong_answer_on_the_form_is_refused_and_the_form_shown_again(app, client, gateway, provider,
                                                                                monkeypatch):
    use_captcha(monkeypatch, app, provider)
    html = form_page(client)

    missing = client.post("/donate", data=filled_form(html))
    wrong = client.post("/donate", data={**filled_form(html), "cf-turnstile-response": "wrong"})

    for response in (missing, wrong):
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert "Please confirm that you are a person" in page and '<form class="donate"' in page
    assert gateway.calls == 0 and len(provider.requests) == 1  # an empty answer is not even sent


def test_the_api_needs_captcha_token_and_names_it_in_the_errors(app, client, gateway, provider, monkeypatch):
    use_captcha(monkeypatch, app, provider)

    missing = client.post(API, json=api_body())
    wrong = client.post(API, json=api_body(captcha_token="nope"))
    wrong_type = client.post(API, json=api_body(captcha_token=42))
    good = client.post(API, json=api_body(captcha_token=GOOD))

    assert missing.status_code == wrong.status_code == wrong_type.status_code == 400
    assert "person" in missing.get_json()["errors"]["captcha_token"]
    assert "person" in wrong.get_json()["errors"]["captcha_token"]
    assert "captcha_token" in wrong_type.get_json()["errors"]
    assert good.status_code == 201 and gateway.calls == 1


@pytest.mark.parametrize("trouble", ["status 500", "not json", "success missing", "success string", "timeout",
                                     "connection refused"])
def test_verification_fails_closed(app, client, gateway, provider, monkeypatch, trouble):
    use_captcha(monkeypatch, app, provider)
    match trouble:
        case "status 500":
            provider.status = 500
        case "not json":
            provider.body = b"<html>maintenance</html>"
        case "success missing":
            provider.body = b'{"error-codes": []}'
        case "success string":
            provider.body = b'{"success": "true"}'
        case "timeout":
            provider.delay = 1.5
            monkeypatch.setattr(captcha, "TIMEOUT", 0.5)
        case "connection refused":
            monkeypatch.setitem(app.config, "CAPTCHA_VERIFY_URL", "http://127.0.0.1:9/siteverify")

    response = client.post(API, json=api_body(captcha_token=GOOD))

    assert response.status_code == 400 and gateway.calls == 0
    assert response.get_json()["errors"]["captcha_token"]


@pytest.mark.parametrize("name", ["turnstile", "hcaptcha"])
@pytest.mark.parametrize("hostname", ["donations.test", "publisher.example", "Publisher.EXAMPLE"])
def test_a_challenge_solved_on_our_own_site_or_the_publishers_passes(app, client, gateway, provider, monkeypatch,
                                                                      name, hostname):
    use_captcha(monkeypatch, app, provider, name)
    provider.hostname = hostname  # PUBLIC_URL http://donations.test, ALLOWED_ORIGINS https://publisher.example

    response = client.post(API, json=api_body(captcha_token=GOOD))

    assert response.status_code == 201 and gateway.calls == 1


def attempts(app) -> int:
    from sqlalchemy import func, select

    from donations.checkout.models import CheckoutAttempt
    from donations.extensions import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(CheckoutAttempt))


@pytest.mark.parametrize("name", ["turnstile", "hcaptcha"])
@pytest.mark.parametrize("hostname", ["evil.example", "donations.test.evil.example", "publisher.example.net", "",
                                      None])
def test_a_challenge_solved_elsewhere_or_nowhere_named_is_refused_on_the_form(app, client, gateway, provider,
                                                                               monkeypatch, caplog, name, hostname):
    use_captcha(monkeypatch, app, provider, name)
    provider.hostname = hostname  # None: a success answer without a hostname
    field = captcha.PROVIDERS[name].response_field
    before = attempts(app)
    html = form_page(client)

    with caplog.at_level("WARNING", logger="donations.security.captcha"):
        response = client.post("/donate", data={**filled_form(html), field: GOOD})

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Please confirm that you are a person" in page and '<form class="donate"' in page
    assert gateway.calls == 0 and attempts(app) == before and len(provider.requests) == 1
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "donations.security.captcha")
    assert "not on one of our hosts" in logged and GOOD not in logged
    if hostname:
        assert hostname in logged


@pytest.mark.parametrize("hostname", ["evil.example", None])
def test_the_api_refuses_a_challenge_solved_elsewhere_or_nowhere_named(app, client, gateway, provider, monkeypatch,
                                                                       hostname):
    use_captcha(monkeypatch, app, provider)
    provider.hostname = hostname
    before = attempts(app)

    response = client.post(API, json=api_body(captcha_token=GOOD))

    assert response.status_code == 400 and gateway.calls == 0 and attempts(app) == before
    assert "person" in response.get_json()["errors"]["captcha_token"]


def test_in_attack_mode_the_captcha_is_required_of_everyone(app, client, gateway, provider, monkeypatch):
    from datetime import timedelta

    from donations.db import now_utc
    from donations.extensions import db
    from donations.security.models import SecurityState

    use_captcha(monkeypatch, app, provider, mode="attack")
    assert client.post(API, json=api_body(email="calm@example.com")).status_code == 201  # no attack: not asked
    assert "challenges.cloudflare.com" not in form_page(client)

    with app.app_context():
        db.session.add(SecurityState(name="attack_mode", active_until=now_utc() + timedelta(minutes=30)))
        db.session.commit()
        antifraud.forget_attack_mode()

    assert client.post(API, json=api_body(email="during@example.com")).status_code == 400
    assert "challenges.cloudflare.com" in form_page(client)
    assert client.post(API, json=api_body(email="during@example.com", captcha_token=GOOD)).status_code == 201
    assert gateway.calls == 2


def test_the_openapi_document_declares_captcha_token_and_the_429(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/checkout-sessions"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["captcha_token"]["type"] == "string"
    assert "Retry-After" in operation["responses"]["429"]["headers"]
