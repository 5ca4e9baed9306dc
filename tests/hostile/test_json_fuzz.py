"""The JSON endpoints with hostile bodies: the checkout API (every field, and whole bodies), the embed's count
beacon and the Stripe webhook (random bodies and signatures). Bad input is a 4xx, never a 5xx."""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from donations.checkout.operations import API_FIELDS
from tests.factories import signed
from tests.hostile.fuzzing import HOSTILE, hostile_json, hostile_text

VALID_API = {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
             "email": "reader@example.com", "name": "Ada Reader", "article_url": "https://publisher.example/a",
             "cover_fees": False, "mailing_consent": False}
VALID_COUNT = {"type": "impression", "campaign": "default", "variant": "a", "url": "http://localhost/news/1",
               "title": "A story", "section": "News", "author": "Ada"}
raw_bodies = st.one_of(st.binary(max_size=300), hostile_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
                       hostile_json.map(lambda v: json.dumps(v).encode()),
                       st.sampled_from([b"\xff\xfe{}", b"[" * 5000, b'{"a":' * 3000, b"{}", b"null", b"1e999"]))


def _check(response, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}\n{response.get_data(as_text=True)[:2000]}"


@HOSTILE
@given(st.sampled_from(sorted(API_FIELDS | {"captcha_token"})), st.one_of(st.just("<missing>"), hostile_json))
def test_every_api_field_survives_hostile_values(world, app, name, value):
    body = {k: v for k, v in VALID_API.items() if k != name}
    if value != "<missing>":
        body[name] = value
    response = app.test_client().post("/api/v1/checkout-sessions", json=body)
    _check(response, f"API {name}={value!r}")
    if response.status_code == 400:
        assert "errors" in response.get_json()


@HOSTILE
@given(raw_bodies, st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_the_api_survives_hostile_bodies(world, app, body, content_type):
    response = app.test_client().post("/api/v1/checkout-sessions", data=body, content_type=content_type)
    _check(response, f"API body {body[:200]!r}")


@HOSTILE
@given(st.sampled_from(sorted(VALID_COUNT)), st.one_of(st.just("<missing>"), hostile_json))
def test_every_count_beacon_field_survives_hostile_values(world, app, name, value):
    body = {k: v for k, v in VALID_COUNT.items() if k != name}
    if value != "<missing>":
        body[name] = value
    _check(app.test_client().post("/embed/v1/count", data=json.dumps(body), content_type="text/plain"),
           f"count {name}={value!r}")


@HOSTILE
@given(raw_bodies)
def test_the_count_beacon_survives_hostile_bodies(world, app, body):
    _check(app.test_client().post("/embed/v1/count", data=body, content_type="text/plain"), f"count {body[:200]!r}")


@HOSTILE
@given(raw_bodies, st.one_of(st.none(), hostile_text.filter(lambda s: "\n" not in s and "\r" not in s),
                              st.just("t=1,v1=abc")))
def test_the_webhook_refuses_random_bodies_and_signatures(world, app, body, signature):
    headers = {} if signature is None else {"Stripe-Signature": signature}
    response = app.test_client().post("/stripe/webhook", data=body, headers=headers, content_type="application/json")
    _check(response, f"webhook {body[:200]!r} {signature!r}")
    assert response.status_code == 400


@HOSTILE
@given(raw_bodies)
def test_the_webhook_refuses_correctly_signed_garbage(world, app, body):
    """Signed with the real secret, so the body itself reaches the parser: not UTF-8, not JSON, not an object,
    not an event."""
    text = body.decode("utf-8", "replace")
    payload, headers = signed(text, app.config["STRIPE_WEBHOOK_SECRET"])
    response = app.test_client().post("/stripe/webhook", data=payload, headers=headers)
    _check(response, f"signed webhook {text[:200]!r}")
