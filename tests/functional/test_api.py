"""POST /api/v1/checkout-sessions and GET /api/v1/campaigns/<slug>: JSON for publishers' own front ends."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.payments.models import SandboxObject

VALID = {
    "campaign": "default",
    "amount": 2500,
    "currency": "EUR",
    "frequency": "one_off",
    "email": "reader@example.com",
    "name": "Ada Reader",
    "article_url": "https://publisher.example/news/1",
    "cover_fees": False,
}


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_valid_request_creates_a_checkout_session(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json=VALID)

    assert response.status_code == 201
    body = response.get_json()
    assert body["id"].startswith("cs_test_")
    assert body["url"] == f"http://donations.test/sandbox/checkout/{body['id']}"
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert (attempt.amount, attempt.currency, attempt.article_url) == (2500, "EUR", VALID["article_url"])


def test_zero_decimal_currency_amounts_are_whole_units(app_ctx, client, monkeypatch):
    monkeypatch.setitem(client.application.config, "CURRENCIES", ["EUR", "JPY"])

    response = client.post("/api/v1/checkout-sessions", json={**VALID, "currency": "JPY", "amount": 2500})

    assert response.status_code == 201
    assert db.session.scalars(select(CheckoutAttempt)).one().amount == 2500


def test_same_idempotency_key_returns_the_same_session(app_ctx, client):
    key = str(uuid.uuid4())

    first = client.post("/api/v1/checkout-sessions", json=VALID, headers={"Idempotency-Key": key})
    second = client.post("/api/v1/checkout-sessions", json=VALID, headers={"Idempotency-Key": key})

    assert first.get_json() == second.get_json()
    assert (count(CheckoutAttempt), count(SandboxObject)) == (1, 1)


BAD = [
    ("amount", 0, "more than zero"),
    ("amount", -100, "more than zero"),
    ("amount", 49, "smallest gift is €0.50"),
    ("amount", 1_000_001, "largest gift"),
    ("amount", "2500", "whole number of minor units"),
    ("amount", 25.5, "whole number of minor units"),
    ("amount", 1e30, "whole number of minor units"),
    ("amount", 10**30, "too large"),
    ("amount", True, "whole number of minor units"),
    ("amount", None, "required"),
    ("currency", "XYZ", "Unknown currency"),
    ("currency", "CHF", "We accept EUR, USD, GBP"),
    ("currency", 978, "Unknown currency"),
    ("email", "not-an-email", "valid email"),
    ("email", "a@example.com\r\nBcc: victim@example.com", "valid email"),
    ("email", "", "Enter your email"),
    ("name", "x" * 10_000, "at most 200"),
    ("name", "Ada\u0000Reader", "not allowed"),
    ("name", 42, "must be text"),
    ("campaign", "nope", "Unknown campaign"),
    ("campaign", ["default"], "Unknown campaign"),
    ("frequency", "weekly", "one_off, monthly or yearly"),
    ("article_url", "javascript:alert(1)", "http or https"),
    ("cover_fees", "yes", "true or false"),
    ("status", "succeeded", "Unknown field"),
    ("receipt_number", "2026-000001", "Unknown field"),
]


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD])
def test_bad_field_gets_a_400_with_its_message_and_no_stripe_call(app_ctx, client, field, value, message):
    body = {**VALID, field: value}

    response = client.post("/api/v1/checkout-sessions", json=body)

    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert message.lower() in errors[field].lower()
    assert (count(CheckoutAttempt), count(SandboxObject)) == (0, 0)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"null", b"{"])
def test_body_that_is_not_a_json_object_gets_400(app_ctx, client, body):
    response = client.post("/api/v1/checkout-sessions", data=body, content_type="application/json")

    assert response.status_code == 400
    assert "errors" in response.get_json()
    assert count(CheckoutAttempt) == 0


def test_malformed_idempotency_key_gets_400(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json=VALID, headers={"Idempotency-Key": "abc"})

    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["errors"]


def test_covering_the_fee_that_pushes_past_the_maximum_is_refused(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json={**VALID, "amount": 1_000_000, "cover_fees": True})

    assert response.status_code == 400
    assert "largest gift" in response.get_json()["errors"]["amount"]


def test_campaign_json_has_copy_and_presets_per_frequency(client):
    response = client.get("/api/v1/campaigns/default?currency=EUR&locale=de")

    assert response.status_code == 200
    ask = response.get_json()
    assert ask["headline"] == "Consider donating to support our work"
    assert "The Riverside Chronicle depends on donations" in ask["body"]
    assert [p["amount"] for p in ask["presets"]["one_off"]] == [1000, 2500, 5000, 10000]
    assert [p["amount"] for p in ask["presets"]["monthly"]] == [500, 1000, 2000]
    assert ask["presets"]["one_off"][1]["label"] == "25,00\xa0€"


def test_unknown_campaign_json_is_404(client):
    response = client.get("/api/v1/campaigns/nope")

    assert response.status_code == 404
    assert "error" in response.get_json()


def test_cors_allows_only_configured_origins(client):
    allowed = client.options("/api/v1/checkout-sessions", headers={
        "Origin": "https://publisher.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    other = client.options("/api/v1/checkout-sessions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})

    assert allowed.headers.get("Access-Control-Allow-Origin") == "https://publisher.example"
    assert "Access-Control-Allow-Origin" not in other.headers


def test_openapi_document_describes_both_endpoints(client):
    doc = client.get("/api/v1/openapi.json").get_json()

    assert doc["openapi"].startswith("3.")
    post = doc["paths"]["/api/v1/checkout-sessions"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"campaign", "amount", "currency", "frequency", "email"}
    assert schema["additionalProperties"] is False
    assert {"201", "400"} <= set(post["responses"])
    assert "/api/v1/campaigns/{slug}" in doc["paths"]


@pytest.mark.parametrize("frequency,interval", [("monthly", "month"), ("yearly", "year")])
def test_recurring_frequencies_open_subscription_checkouts(app_ctx, client, frequency, interval):
    response = client.post("/api/v1/checkout-sessions", json={**VALID, "frequency": frequency})

    assert response.status_code == 201
    session = db.session.get(SandboxObject, response.get_json()["id"]).data
    assert (session["mode"], session["sandbox_interval"]) == ("subscription", interval)


def test_json_nested_deeper_than_the_parser_goes_gets_400(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", data=b"[" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert count(CheckoutAttempt) == 0


def test_attempt_id_is_not_the_clients_idempotency_key(app_ctx, client):
    key = str(uuid.uuid4())

    client.post("/api/v1/checkout-sessions", json=VALID, headers={"Idempotency-Key": key})

    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert attempt.id != key
    assert client.get(f"/donate?attempt={key}").get_data(as_text=True).count("reader@example.com") == 0
