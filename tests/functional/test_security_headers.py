"""Headers on every route: every rule of the URL map with each of its methods, signed in and not, plus error
pages (404, 405, 429, 500), static files and the beacon answered before Flask."""
from __future__ import annotations

import pytest
from werkzeug.routing import AnyConverter, IntegerConverter, PathConverter

from donations import config as app_config
from donations import create_app
from tests.functional.helpers import csp_directives
from tests.staff_helpers import default_campaign_id, sign_in, signed_in

FRAMEABLE = {"campaigns.embed_frame"}  # by ALLOWED_ORIGINS only


def assert_hardened(response, frame_ancestors: str = "'none'", hsts: bool = False) -> None:
    csp = csp_directives(response)
    where = f"{response.request.method} {response.request.path} -> {response.status_code}"
    assert csp.get("default-src") == "'self'", where
    assert csp.get("script-src") == "'self'", where  # no 'unsafe-inline', no 'unsafe-eval', no other site
    assert csp.get("object-src") == "'none'" and csp.get("base-uri") == "'none'", where
    assert csp.get("frame-ancestors") == frame_ancestors, where
    assert response.headers.get("X-Frame-Options") == ("DENY" if frame_ancestors == "'none'" else None), where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    expected_referrer = "no-referrer" if response.request.path.startswith("/account") else \
        "strict-origin-when-cross-origin"
    assert response.headers.get("Referrer-Policy") == expected_referrer, where
    assert ("Strict-Transport-Security" in response.headers) is hsts, where
    if hsts:
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def sample_requests(app, campaign_id: int) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for every rule and method, with plausible values in the path."""
    adapter = app.url_map.bind("donations.test")
    requests = []
    for rule in app.url_map.iter_rules():
        values = {}
        for name, converter in rule._converters.items():
            if isinstance(converter, AnyConverter):
                values[name] = sorted(converter.items)[0]
            elif isinstance(converter, IntegerConverter):
                values[name] = campaign_id if name == "campaign_id" else 1
            elif isinstance(converter, PathConverter):
                values[name] = "site.css"
            else:
                values[name] = "default" if name == "slug" else "not-a-real-one"
        path = adapter.build(rule.endpoint, values)
        for method in sorted(rule.methods - {"HEAD"}):
            requests.append((rule.endpoint, method, path))
    return requests


def test_the_route_list_covers_the_whole_app(app):
    endpoints = {endpoint for endpoint, _, _ in sample_requests(app, 1)}
    assert endpoints == {rule.endpoint for rule in app.url_map.iter_rules()}
    assert len(endpoints) > 50  # the staff area, the ask, checkout, accounts, sandbox, webhooks, static


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_every_route_and_method_answers_with_the_security_headers(client, who):
    app = client.application
    if who == "admin":
        signed_in(client, "admin")
    statuses = set()
    for endpoint, method, path in sample_requests(app, default_campaign_id(app)):
        response = client.open(path, method=method, data={} if method == "POST" else None)
        statuses.add(response.status_code)
        assert response.status_code < 500, f"{method} {path}"
        framed = endpoint in FRAMEABLE and method == "GET" and response.status_code == 200
        assert_hardened(response, "https://publisher.example" if framed else "'none'")
        response.close()
    assert {200, 400} <= statuses  # pages rendered, and POSTs without a CSRF token refused


def test_error_pages_carry_the_headers(client):
    for response in (client.get("/no-such-page"), client.get("/api/v1/checkout-sessions"),
                     client.get("/embed/cta/nope"), client.post("/api/v1/checkout-sessions", json=[]),
                     client.get("/api/v1/campaigns/nope")):
        assert response.status_code in (400, 404, 405)
        assert_hardened(response)


def test_a_rate_limited_answer_carries_the_headers(client):
    statuses = [sign_in(client, "who@example.org", "wrong").status_code for _ in range(6)]

    response = sign_in(client, "who@example.org", "wrong")
    assert statuses[-1] == response.status_code == 429
    assert_hardened(response)


def test_static_files_and_the_embed_script_carry_the_headers(client):
    for path in ("/static/site.css", "/static/staff/campaign-preview.js", "/embed/v1/cta.js"):
        with client.get(path) as response:
            assert response.status_code == 200, path
            assert_hardened(response)


def test_the_beacon_answered_before_flask_carries_the_headers_and_keeps_its_own(client):
    for response in (client.post("/embed/v1/count", data="not json"), client.get("/embed/v1/count"),
                     client.options("/embed/v1/count")):
        assert_hardened(response)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Cache-Control"] == "no-store"


def test_the_embed_keeps_its_cors_and_caching(client):
    script = client.get("/embed/v1/cta.js")
    campaigns = client.get("/embed/v1/campaigns.json")

    assert script.headers["Access-Control-Allow-Origin"] == "*" and "max-age" in script.headers["Cache-Control"]
    assert campaigns.headers["Cache-Control"] == "public, max-age=0"  # EMBED_CACHE_SECONDS, 0 in tests
    assert campaigns.headers["Access-Control-Allow-Origin"] == "*"


def test_the_iframe_is_framed_by_nobody_when_no_origin_is_allowed(client, monkeypatch):
    monkeypatch.setitem(client.application.config, "ALLOWED_ORIGINS", [])

    assert_hardened(client.get("/embed/cta/default"), "'none'")


def bare_app(tmp_path, **environ):
    """An app on an empty database (no migrations): enough for headers, and for a 500."""
    config = app_config.TestConfig(environ=environ, instance_path=str(tmp_path))
    config.SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    return create_app(config)


def test_hsts_outside_local_development_and_on_a_500(tmp_path):
    app = bare_app(tmp_path, PUBLIC_URL="https://donations.example")

    @app.get("/_boom")
    def boom():
        raise RuntimeError("boom")

    client = app.test_client()
    failed = client.get("/_boom")
    beacon = client.post("/embed/v1/count", data="{}")

    assert failed.status_code == 500
    assert_hardened(failed, hsts=True)
    assert_hardened(beacon, hsts=True)
    with client.get("/static/site.css") as static:
        assert_hardened(static, hsts=True)


def test_no_hsts_for_local_http_development(client):
    assert not client.application.config["HSTS_ENABLED"]
    assert "Strict-Transport-Security" not in client.get("/donate").headers


@pytest.mark.parametrize("provider, origins", [
    ("turnstile", ["https://challenges.cloudflare.com"]),
    ("hcaptcha", ["https://hcaptcha.com", "https://*.hcaptcha.com"]),
])
def test_a_captcha_provider_is_allowed_to_load_its_widget(tmp_path, provider, origins):
    app = bare_app(tmp_path, CAPTCHA_PROVIDER=provider, CAPTCHA_SITE_KEY="site-key", CAPTCHA_SECRET_KEY="secret")

    csp = csp_directives(app.test_client().get("/no-such-page"))
    for directive in ("script-src", "frame-src", "connect-src"):
        assert csp[directive].split() == ["'self'", *origins], directive
    assert csp["object-src"] == "'none'"


def test_no_template_has_inline_script_or_event_handlers():
    """script-src 'self' would block them: every script is a file of ours (pages, staff pages, the ask)."""
    import re
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "templates"
    offenders = []
    for path in templates.rglob("*.html"):
        html = path.read_text()
        offenders += [f"{path.name}: {tag[:60]}" for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag]
        offenders += [f"{path.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", html)]
        offenders += [f"{path.name}: javascript: URL" for _ in re.findall(r"javascript:", html, re.I)]
    assert offenders == []
