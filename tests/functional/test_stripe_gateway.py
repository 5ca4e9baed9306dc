"""The Stripe gateway against a fake of Stripe's HTTP API: what goes over the wire, idempotency, failures.

Requests here run without the ``app_ctx`` fixture, so each one has its own database session,
as in production: a request that fails without committing leaves nothing for the next one.
"""
from __future__ import annotations

import inspect
import re
import socket
import uuid

import pytest
import stripe
from flask import Flask
from sqlalchemy import func, select

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.payments.gateway import CheckoutRequest, GatewayError, PaymentGateway, init_gateway
from donations.payments.sandbox_gateway import SandboxGateway
from donations.payments.stripe_gateway import StripeGateway
from tests.stripe_fake import fake_stripe  # noqa: F401  (registers the fixture)

SECRET_KEY = "sk_test_123"
API = "/api/v1/checkout-sessions"
BODY = {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
        "email": "a@example.com", "article_url": "https://publisher.example/a"}
UNAVAILABLE = "The payment provider is unavailable. Nothing was charged; please try again."


@pytest.fixture
def stripe_app(app, client, fake_stripe, monkeypatch):  # noqa: F811
    """The app taking payments through Stripe (the fake); ``client`` puts the test in its rolled-back transaction."""
    gateway = StripeGateway(SECRET_KEY, fake_stripe.url)
    monkeypatch.setitem(app.extensions, "payment_gateway", gateway)
    return app


def attempts() -> list[CheckoutAttempt]:
    return list(db.session.scalars(select(CheckoutAttempt).order_by(CheckoutAttempt.created_at)))


def count_attempts(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(CheckoutAttempt))


def unopened_attempt_tries(app) -> list[int]:
    """Failed tries of each attempt kept without a checkout (kept so that a retry uses a fresh key)."""
    with app.app_context():
        return list(db.session.scalars(select(CheckoutAttempt.gateway_tries)
                                       .where(CheckoutAttempt.checkout_url.is_(None))))


def hidden(html: str, name: str) -> str:
    for tag in re.findall(r"<input[^>]*>", html):
        if f'name="{name}"' in tag:
            return re.search(r'value="([^"]*)"', tag).group(1)
    raise AssertionError(f"no input named {name!r} in the page")


def donation_form(client, **overrides) -> dict:
    """What the reader's browser posts: the page's CSRF token and per-form ``token``, and their choices."""
    html = client.get("/donate").get_data(as_text=True)
    data = {"csrf_token": hidden(html, "csrf_token"), "token": hidden(html, "token"), "campaign": "default",
            "amount": "25.00", "custom_amount": "", "currency": "EUR", "frequency": "one_off",
            "email": "reader@example.com", "name": "Ada Reader", "article_url": "https://publisher.example/news/1"}
    data.update(overrides)
    return data


# -- what the app sends to Stripe --------------------------------------------------------------------


def test_checkout_session_request_carries_the_gift_the_reader_and_our_references(stripe_app, client,
                                                                                fake_stripe):  # noqa: F811
    response = client.post(API, json=BODY)

    assert response.status_code == 201
    [call] = fake_stripe.calls()
    with stripe_app.app_context():
        [attempt] = attempts()
    public = stripe_app.config["PUBLIC_URL"]
    assert call.form["mode"] == "payment"
    assert call.form["submit_type"] == "donate"
    assert call.form["line_items[0][price_data][currency]"] == "eur"
    assert call.form["line_items[0][price_data][unit_amount]"] == "2500"
    assert call.form["line_items[0][quantity]"] == "1"
    assert call.form["customer_email"] == "a@example.com"
    assert call.form["metadata[attempt_id]"] == attempt.id
    assert call.form["metadata[campaign]"] == "default"
    assert call.form["metadata[article_url]"] == "https://publisher.example/a"
    assert call.form["payment_intent_data[metadata][attempt_id]"] == attempt.id
    # Stripe puts the session id where the placeholder is; the thank-you page looks it up.
    assert call.form["success_url"] == f"{public}/thanks?session_id={{CHECKOUT_SESSION_ID}}"
    assert call.form["cancel_url"].startswith(f"{public}/donate?")
    assert attempt.id in call.form["cancel_url"]
    assert call.headers["Idempotency-Key"] == f"donations-checkout-session-{attempt.id}"
    assert call.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert call.headers["Stripe-Version"] == stripe.api_version == "2026-10-28.endive"


def test_covered_fee_is_charged_in_the_stripe_line_item(stripe_app, client, fake_stripe):  # noqa: F811
    response = client.post(API, json={**BODY, "cover_fees": True})

    assert response.status_code == 201
    # 1.5 % + €0.25 by default: (2500 + 25) / 0.985 = 2563.45…, rounded up
    assert fake_stripe.last.form["line_items[0][price_data][unit_amount]"] == "2564"


# -- the JSON API and the form with Stripe behind them -----------------------------------------------


def test_api_answers_with_the_stripe_checkout_session(stripe_app, client, fake_stripe):  # noqa: F811
    response = client.post(API, json=BODY)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "url"}
    assert body["id"].startswith("cs_test_") and body["id"] in fake_stripe.sessions
    assert body["url"] == fake_stripe.sessions[body["id"]]["url"] == f"https://checkout.stripe.com/c/pay/{body['id']}"
    with stripe_app.app_context():
        [attempt] = attempts()
        assert (attempt.gateway, attempt.checkout_session_id, attempt.checkout_url) == ("stripe", body["id"],
                                                                                        body["url"])
    assert fake_stripe.sessions[body["id"]]["metadata"]["attempt_id"] == attempt.id


def test_api_request_repeated_with_its_idempotency_key_makes_one_stripe_call(stripe_app, client,
                                                                              fake_stripe):  # noqa: F811
    key = str(uuid.uuid4())

    first = client.post(API, json=BODY, headers={"Idempotency-Key": key})
    second = client.post(API, json=BODY, headers={"Idempotency-Key": key})

    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert len(fake_stripe.calls()) == 1
    assert count_attempts(stripe_app) == 1


def test_api_requests_without_a_shared_key_are_separate_gifts(stripe_app, client, fake_stripe):  # noqa: F811
    first = client.post(API, json=BODY, headers={"Idempotency-Key": str(uuid.uuid4())})
    second = client.post(API, json=BODY, headers={"Idempotency-Key": str(uuid.uuid4())})

    assert first.get_json()["id"] != second.get_json()["id"]
    keys = {call.headers["Idempotency-Key"] for call in fake_stripe.calls()}
    assert len(keys) == 2


def test_double_clicked_form_redirects_twice_to_one_stripe_checkout(stripe_app, client, fake_stripe):  # noqa: F811
    data = donation_form(client)

    first = client.post("/donate", data=data)
    second = client.post("/donate", data=data)

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert first.headers["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert len(fake_stripe.calls()) == 1
    assert count_attempts(stripe_app) == 1


def test_form_changed_after_going_back_opens_a_new_stripe_checkout(stripe_app, client, fake_stripe):  # noqa: F811
    data = donation_form(client)

    first = client.post("/donate", data=data)
    second = client.post("/donate", data={**data, "amount": "50.00"})

    # A new gift needs a new idempotency key: Stripe refuses a key reused with other parameters.
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] != second.headers["Location"]
    first_call, second_call = fake_stripe.calls()
    assert first_call.headers["Idempotency-Key"] != second_call.headers["Idempotency-Key"]
    assert second_call.form["line_items[0][price_data][unit_amount]"] == "5000"


# -- when Stripe fails -------------------------------------------------------------------------------


def test_stripe_failure_gets_a_503_with_a_clear_message_from_the_api(stripe_app, client, fake_stripe):  # noqa: F811
    fake_stripe.fail_next(500)

    response = client.post(API, json=BODY)

    assert response.status_code == 503
    assert response.is_json
    assert response.get_json() == {"error": UNAVAILABLE}
    assert "Traceback" not in response.get_data(as_text=True)
    assert "fake Stripe" not in response.get_data(as_text=True)  # Stripe's own words stay in our log
    assert unopened_attempt_tries(stripe_app) == [1]


def test_stripe_failure_is_shown_on_the_form_with_the_readers_input_kept(stripe_app, client,
                                                                          fake_stripe):  # noqa: F811
    data = donation_form(client, email="kept@example.com")
    fake_stripe.fail_next(500)

    response = client.post("/donate", data=data)

    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert UNAVAILABLE in html
    assert 'value="kept@example.com"' in html
    assert "Traceback" not in html
    assert unopened_attempt_tries(stripe_app) == [1]


def test_reader_can_try_again_after_a_stripe_outage(stripe_app, client, fake_stripe):  # noqa: F811
    data = donation_form(client)
    fake_stripe.fail_next(503, saved=False)  # the request never reached the endpoint

    failed = client.post("/donate", data=data)
    retried = client.post("/donate", data=data)

    assert failed.status_code == 503
    assert retried.status_code == 303
    assert retried.headers["Location"].startswith("https://checkout.stripe.com/c/pay/")
    assert count_attempts(stripe_app) == 1


# https://docs.stripe.com/api/idempotent_requests: "Retries with the same key return the saved response,
# including 500 errors." A 500 that Stripe saved is replayed for every later request with that key.


def test_reader_pressing_donate_again_after_a_stripe_500_gets_checkout(stripe_app, client, fake_stripe):  # noqa: F811
    fake_stripe.fail_next(500, saved=True)
    failed = client.post("/donate", data=donation_form(client))
    page = failed.get_data(as_text=True)

    retried = client.post("/donate", data=donation_form(client, token=hidden(page, "token"),
                                                       csrf_token=hidden(page, "csrf_token")))

    assert failed.status_code == 503
    assert retried.status_code == 303


def test_api_retry_with_the_same_idempotency_key_after_a_stripe_500_gets_checkout(stripe_app, client,
                                                                                   fake_stripe):  # noqa: F811
    fake_stripe.fail_next(500, saved=True)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    failed = client.post(API, json=BODY, headers=headers)

    retried = client.post(API, json=BODY, headers=headers)

    assert failed.status_code == 503
    assert retried.status_code == 201


def test_transient_stripe_error_is_retried_with_the_same_idempotency_key(stripe_app, client,
                                                                          fake_stripe):  # noqa: F811
    fake_stripe.fail_next(500, should_retry=True)

    response = client.post(API, json=BODY)

    assert response.status_code == 201
    failed, succeeded = fake_stripe.calls()
    assert failed.headers["Idempotency-Key"] == succeeded.headers["Idempotency-Key"]
    assert failed.form == succeeded.form


def checkout_request(**overrides) -> CheckoutRequest:
    attempt_id = str(uuid.uuid4())
    values = dict(attempt_id=attempt_id, amount=2500, currency="EUR", frequency="one_off", email="a@example.com",
                  description="Donation", success_url="http://donations.test/thanks?session_id={CHECKOUT_SESSION_ID}",
                  cancel_url="http://donations.test/donate", metadata={"attempt_id": attempt_id})
    values.update(overrides)
    return CheckoutRequest(**values)


STRIPE_ERRORS = [
    (500, None),
    (402, {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}),
    (400, {"type": "invalid_request_error", "param": "line_items[0][price_data][unit_amount]",
           "message": "Amount must be at least €0.50 eur"}),
    (401, None),
    (429, None),
]


@pytest.mark.parametrize("status,error", STRIPE_ERRORS, ids=[str(status) for status, _ in STRIPE_ERRORS])
def test_stripe_errors_become_gateway_errors(fake_stripe, status, error, caplog):  # noqa: F811
    gateway = StripeGateway(SECRET_KEY, fake_stripe.url)
    fake_stripe.fail_next(status, error)
    request = checkout_request()

    with pytest.raises(GatewayError, match="Nothing was charged"):
        gateway.create_checkout_session(request)

    assert len(fake_stripe.requests) == 1
    assert request.attempt_id in caplog.text  # the operator can find the attempt in the log


def test_wrong_secret_key_is_a_gateway_error(fake_stripe):  # noqa: F811
    gateway = StripeGateway("not-a-key", fake_stripe.url)

    with pytest.raises(GatewayError):
        gateway.create_checkout_session(checkout_request())


def test_unreachable_stripe_is_a_gateway_error():
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = StripeGateway(SECRET_KEY, f"http://127.0.0.1:{port}")

    with pytest.raises(GatewayError, match="Nothing was charged"):
        gateway.create_checkout_session(checkout_request())


# -- one interface, two gateways ---------------------------------------------------------------------


def test_configured_stripe_key_selects_stripe_at_the_configured_api_base(fake_stripe):  # noqa: F811
    flask_app = Flask(__name__)
    flask_app.config.update(STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_API_BASE=fake_stripe.url + "/")
    init_gateway(flask_app)
    gateway = flask_app.extensions["payment_gateway"]

    session = gateway.create_checkout_session(checkout_request())

    assert isinstance(gateway, StripeGateway)
    assert session.url == fake_stripe.sessions[session.id]["url"]


def test_without_a_stripe_key_the_sandbox_is_used():
    flask_app = Flask(__name__)
    flask_app.config.update(STRIPE_SECRET_KEY=None, STRIPE_API_BASE=None)

    init_gateway(flask_app)

    assert isinstance(flask_app.extensions["payment_gateway"], SandboxGateway)


@pytest.mark.parametrize("make", [lambda: StripeGateway(SECRET_KEY), SandboxGateway], ids=["stripe", "sandbox"])
def test_both_gateways_implement_the_payment_gateway_interface(make):
    gateway = make()

    assert isinstance(gateway, PaymentGateway)
    assert isinstance(gateway.name, str) and gateway.name
    assert (inspect.signature(type(gateway).create_checkout_session)
            == inspect.signature(PaymentGateway.create_checkout_session))
