"""The Stripe gateway's subscription calls against a fake of Stripe Billing: what goes over the wire.

The fake here extends tests/stripe_fake.py's FakeStripe (Checkout Sessions, idempotency, injected
failures) with what a monthly or yearly gift needs from Stripe Billing:

* ``GET /v1/subscriptions/<id>`` (https://docs.stripe.com/api/subscriptions/retrieve);
* ``POST /v1/subscriptions/<id>`` (https://docs.stripe.com/api/subscriptions/update): new item price
  (``items[0][price_data]``, which needs ``product``), ``pause_collection`` (``""`` unsets it),
  ``cancel_at_period_end``, ``proration_behavior``;
* ``DELETE /v1/subscriptions/<id>`` (https://docs.stripe.com/api/subscriptions/cancel);
* ``POST /v1/billing_portal/sessions`` (https://docs.stripe.com/api/customer_portal/sessions/create).

Unknown ids get Stripe's 404 ``resource_missing``; a canceled subscription refuses updates.
"""
from __future__ import annotations

import inspect
import re
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from werkzeug.wrappers import Response

from donations.accounts.tokens import manage_url, read_token
from donations.extensions import db
from donations.ledger.models import Frequency, RecurringDonation, RecurringStatus, Supporter
from donations.mail.models import OutboxEmail
from donations.payments.gateway import CheckoutRequest, GatewayError, PaymentGateway
from donations.payments.sandbox_gateway import SandboxGateway
from donations.payments.stripe_gateway import StripeGateway
from tests.functional.helpers import hidden_value
from tests.stripe_fake import FakeStripe, RecordedRequest, _json, serving

SECRET_KEY = "sk_test_123"
PUBLIC = "http://donations.test"
UNAVAILABLE = "The payment provider is unavailable. Nothing was charged; please try again."
PAUSE_BEHAVIORS = {"void", "keep_as_draft", "mark_uncollectible"}


# -- the fake Stripe Billing ---------------------------------------------------------------------------


def _missing(kind: str, object_id: str, param: str = "id") -> tuple[int, dict]:
    return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": param,
                           "message": f"No such {kind}: '{object_id}'"}}


def _invalid(message: str, param: str | None = None) -> tuple[int, dict]:
    error = {"type": "invalid_request_error", "code": "parameter_invalid", "message": message}
    if param:
        error["param"] = param
    return 400, {"error": error}


@dataclass
class FakeStripeBilling(FakeStripe):
    """FakeStripe plus subscriptions and Billing Portal sessions."""

    subscriptions: dict[str, dict] = field(default_factory=dict)
    #: Payment intents as GET /v1/payment_intents/<id> with expand[]=latest_charge.balance_transaction returns them.
    payment_intents: dict[str, dict] = field(default_factory=dict)
    portal_sessions: dict[str, dict] = field(default_factory=dict)
    #: Prices made by subscription updates, by id.
    prices: dict[str, dict] = field(default_factory=dict)

    def add_subscription(self, *, amount: int = 1000, currency: str = "eur", interval: str = "month",
                         customer: str | None = None, metadata: dict | None = None,
                         expand_product: bool = False) -> dict:
        """A subscription as Stripe holds it after a subscription-mode Checkout; returned as stored."""
        now = int(time.time())
        product = f"prod_{secrets.token_hex(7)}"
        subscription_id = f"sub_{secrets.token_hex(12)}"
        subscription = {
            "id": subscription_id,
            "object": "subscription",
            "status": "active",
            "customer": customer or f"cus_{secrets.token_hex(7)}",
            "currency": currency,
            "metadata": metadata or {},
            "cancel_at_period_end": False,
            "canceled_at": None,
            "ended_at": None,
            "pause_collection": None,
            "created": now,
            "start_date": now,
            "livemode": False,
            "latest_invoice": f"in_{secrets.token_hex(12)}",
            "items": {"object": "list", "has_more": False,
                      "url": f"/v1/subscription_items?subscription={subscription_id}",
                      "data": [{
                          "id": f"si_{secrets.token_hex(7)}",
                          "object": "subscription_item",
                          "quantity": 1,
                          "subscription": subscription_id,
                          "current_period_start": now,
                          "current_period_end": now + 30 * 86400,
                          "price": {
                              "id": f"price_{secrets.token_hex(12)}",
                              "object": "price",
                              "type": "recurring",
                              "unit_amount": amount,
                              "currency": currency,
                              "product": {"id": product, "object": "product", "name": "Donation"}
                              if expand_product else product,
                              "recurring": {"interval": interval, "interval_count": 1},
                          },
                      }]},
        }
        with self._lock:
            self.subscriptions[subscription_id] = subscription
        return subscription

    def _respond(self, req: RecordedRequest) -> Response:
        # Authentication, injected failures and idempotent replays stay FakeStripe's; the routes it
        # does not know (its 404 "Unrecognized request URL") are answered here.
        response = super()._respond(req)
        if response.status_code != 404 or b"Unrecognized request URL" not in response.get_data():
            return response
        answer = self._route(req)
        if answer is None:
            return response
        status, body = answer
        key = req.headers.get("Idempotency-Key")
        if key and req.method == "POST":
            self._saved[key] = (req.form, status, body, {})
        return _json(status, body)

    def _route(self, req: RecordedRequest) -> tuple[int, dict] | None:
        if (req.method, req.path) == ("POST", "/v1/billing_portal/sessions"):
            return self._create_portal_session(req.form)
        intent = re.fullmatch(r"/v1/payment_intents/([^/]+)", req.path)
        if intent is not None and req.method == "GET":
            found = self.payment_intents.get(intent.group(1))
            return (200, found) if found is not None else _missing("payment_intent", intent.group(1))
        match = re.fullmatch(r"/v1/subscriptions/([^/]+)", req.path)
        if match is None:
            return None
        subscription = self.subscriptions.get(match.group(1))
        if subscription is None:
            return _missing("subscription", match.group(1))
        if req.method == "GET":
            return 200, subscription
        if req.method == "POST":
            return self._update_subscription(subscription, req.form)
        if req.method == "DELETE":
            if subscription["status"] == "canceled":
                return _invalid(f"This subscription has already been canceled: {subscription['id']}")
            now = int(time.time())
            subscription.update(status="canceled", canceled_at=now, ended_at=now)
            return 200, subscription
        return None

    def _update_subscription(self, subscription: dict, form: dict[str, str]) -> tuple[int, dict]:
        if subscription["status"] == "canceled":
            return _invalid("A canceled subscription can only update its cancellation_details and metadata.")
        known = ("items[", "pause_collection", "cancel_at_period_end", "proration_behavior", "metadata[",
                 "trial_end")
        for name in form:
            if not name.startswith(known):
                return _invalid(f"Received unknown parameter: {name}", name)
        if "proration_behavior" in form and form["proration_behavior"] not in (
                "none", "create_prorations", "always_invoice"):
            return _invalid("Invalid proration_behavior", "proration_behavior")
        if "cancel_at_period_end" in form:
            if form["cancel_at_period_end"] not in ("true", "false"):
                return _invalid("Invalid boolean", "cancel_at_period_end")
            subscription["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        if "pause_collection" in form:
            if form["pause_collection"] != "":
                return _invalid("Invalid object", "pause_collection")
            subscription["pause_collection"] = None
        elif any(name.startswith("pause_collection[") for name in form):
            behavior = form.get("pause_collection[behavior]")
            if behavior not in PAUSE_BEHAVIORS:
                return _invalid("Missing or invalid pause_collection[behavior]", "pause_collection[behavior]")
            resumes_at = form.get("pause_collection[resumes_at]")
            subscription["pause_collection"] = {"behavior": behavior,
                                                "resumes_at": int(resumes_at) if resumes_at else None}
        if any(name.startswith("items[") for name in form):
            error = self._update_item(subscription, form)
            if error:
                return error
        for name, value in form.items():
            if name.startswith("metadata["):
                subscription["metadata"][name[len("metadata["):-1]] = value
        return 200, subscription

    def _update_item(self, subscription: dict, form: dict[str, str]) -> tuple[int, dict] | None:
        item_id = form.get("items[0][id]")
        items = {item["id"]: item for item in subscription["items"]["data"]}
        if item_id not in items:
            return _missing("subscription_item", item_id or "", "items[0][id]")
        item = items[item_id]
        prefix = "items[0][price_data]"
        if any(name.startswith(prefix) for name in form):
            needed = ("[currency]", "[product]", "[recurring][interval]", "[unit_amount]")
            for part in needed:
                if not form.get(prefix + part):
                    return _invalid(f"Missing required param: {prefix + part}.", prefix + part)
            if form[f"{prefix}[recurring][interval]"] not in ("day", "week", "month", "year"):
                return _invalid("Invalid interval", f"{prefix}[recurring][interval]")
            price = {
                "id": f"price_{secrets.token_hex(12)}",
                "object": "price",
                "type": "recurring",
                "unit_amount": int(form[f"{prefix}[unit_amount]"]),
                "currency": form[f"{prefix}[currency]"],
                "product": form[f"{prefix}[product]"],
                "recurring": {"interval": form[f"{prefix}[recurring][interval]"], "interval_count": 1},
            }
            self.prices[price["id"]] = price
            item["price"] = price
        if "items[0][quantity]" in form:
            item["quantity"] = int(form["items[0][quantity]"])
        return None

    def _create_portal_session(self, form: dict[str, str]) -> tuple[int, dict]:
        customer = form.get("customer")
        if not customer:
            return _invalid("Missing required param: customer.", "customer")
        if customer not in {s["customer"] for s in self.subscriptions.values()}:
            return _missing("customer", customer, "customer")
        session_id = f"bps_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "customer": customer,
            "return_url": form.get("return_url"),
            # A deep link: the card update, then a redirect (Stripe's flow_data, sent as bracketed form keys).
            "flow": {key.removeprefix("flow_data"): value for key, value in form.items()
                     if key.startswith("flow_data[")} or None,
            "url": f"https://billing.stripe.com/p/session/test_{secrets.token_hex(12)}",
            "livemode": False,
            "created": int(time.time()),
        }
        self.portal_sessions[session_id] = session
        return 200, session


@pytest.fixture
def fake_billing(monkeypatch):
    """A fake Stripe API with Billing on a free loopback port, running for one test."""
    with serving(FakeStripeBilling(), monkeypatch) as fake:
        yield fake


@pytest.fixture
def gateway(fake_billing) -> StripeGateway:
    return StripeGateway(SECRET_KEY, fake_billing.url)


def checkout_request(**overrides) -> CheckoutRequest:
    attempt_id = str(uuid.uuid4())
    values = dict(attempt_id=attempt_id, amount=1000, currency="EUR", frequency="monthly", email="a@example.com",
                  description="Monthly donation", success_url=f"{PUBLIC}/thanks?session_id={{CHECKOUT_SESSION_ID}}",
                  cancel_url=f"{PUBLIC}/donate", metadata={"attempt_id": attempt_id, "campaign": "default"})
    values.update(overrides)
    return CheckoutRequest(**values)


def is_plain(value) -> bool:
    """Only dicts, lists and scalars all the way down: what the ledger and json.dumps expect."""
    if isinstance(value, dict):
        return type(value) is dict and all(is_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


# -- Checkout in subscription mode ---------------------------------------------------------------------


@pytest.mark.parametrize("frequency,interval", [("monthly", "month"), ("yearly", "year")])
def test_recurring_checkout_opens_a_subscription_with_a_recurring_price(gateway, fake_billing, frequency,
                                                                          interval):
    request = checkout_request(frequency=frequency)

    session = gateway.create_checkout_session(request)

    [call] = fake_billing.calls("POST", "/v1/checkout/sessions")
    form = call.form
    assert form["mode"] == "subscription"
    assert form["line_items[0][price_data][recurring][interval]"] == interval
    assert form["line_items[0][price_data][unit_amount]"] == "1000"
    assert form["line_items[0][price_data][currency]"] == "eur"
    assert form["line_items[0][quantity]"] == "1"
    assert form["subscription_data[metadata][attempt_id]"] == request.attempt_id
    assert form["subscription_data[metadata][campaign]"] == "default"
    assert form["metadata[attempt_id]"] == request.attempt_id
    assert form["client_reference_id"] == request.attempt_id
    assert form["customer_email"] == "a@example.com"
    # Stripe refuses submit_type and payment_intent_data in subscription mode.
    assert "submit_type" not in form
    assert not [name for name in form if name.startswith("payment_intent_data")]
    assert call.headers["Idempotency-Key"] == f"donations-checkout-session-{request.attempt_id}"
    assert session.url == fake_billing.sessions[session.id]["url"]


def test_one_off_checkout_has_no_recurring_price_and_no_subscription_data(gateway, fake_billing):
    gateway.create_checkout_session(checkout_request(frequency="one_off"))

    form = fake_billing.last.form
    assert form["mode"] == "payment" and form["submit_type"] == "donate"
    assert not [name for name in form if "[recurring]" in name or name.startswith("subscription_data")]


def test_monthly_gift_through_the_api_opens_a_stripe_subscription_checkout(app, client, fake_billing, monkeypatch):
    monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway(SECRET_KEY, fake_billing.url))

    response = client.post("/api/v1/checkout-sessions", json={
        "campaign": "default", "amount": 1000, "currency": "EUR", "frequency": "monthly",
        "email": "a@example.com", "article_url": "https://publisher.example/a"})

    assert response.status_code == 201
    form = fake_billing.last.form
    assert (form["mode"], form["line_items[0][price_data][recurring][interval]"]) == ("subscription", "month")
    assert form["subscription_data[metadata][attempt_id]"] == form["metadata[attempt_id]"]


# -- changing, pausing, resuming, cancelling --------------------------------------------------------------


@pytest.mark.parametrize("expand_product", [False, True], ids=["product-id", "product-expanded"])
def test_change_retrieves_the_subscription_and_posts_a_new_price_without_proration(gateway, fake_billing,
                                                                                 expand_product):
    subscription = fake_billing.add_subscription(amount=1000, interval="month", expand_product=expand_product)
    item = subscription["items"]["data"][0]
    product = item["price"]["product"]["id"] if expand_product else item["price"]["product"]

    result = gateway.change_subscription(subscription["id"], amount=1550, currency="EUR", interval="year",
                                         idempotency_key="donations-change-7-form-token")

    retrieve, update = fake_billing.requests
    assert (retrieve.method, retrieve.path) == ("GET", f"/v1/subscriptions/{subscription['id']}")
    assert (update.method, update.path) == ("POST", f"/v1/subscriptions/{subscription['id']}")
    assert update.form["items[0][id]"] == item["id"]
    assert update.form["items[0][price_data][unit_amount]"] == "1550"
    assert update.form["items[0][price_data][currency]"] == "eur"
    assert update.form["items[0][price_data][recurring][interval]"] == "year"
    assert update.form["items[0][price_data][product]"] == product
    assert update.form["items[0][quantity]"] == "1"
    assert update.form["proration_behavior"] == "none"
    assert update.headers["Idempotency-Key"] == "donations-change-7-form-token"
    assert is_plain(result)
    price = result["items"]["data"][0]["price"]
    assert (price["unit_amount"], price["currency"], price["recurring"]["interval"]) == (1550, "eur", "year")
    assert result["id"] == subscription["id"] and result["status"] == "active"


@pytest.mark.parametrize("interval,deferred", [("year", True), ("month", False)])
def test_a_new_interval_starts_after_the_period_already_paid_for(gateway, fake_billing, interval, deferred):
    subscription = fake_billing.add_subscription(amount=1000, interval="month")
    period_end = subscription["items"]["data"][0]["current_period_end"]

    gateway.change_subscription(subscription["id"], amount=1550, currency="EUR", interval=interval,
                                idempotency_key=f"donations-change-7-{interval}")

    update = fake_billing.requests[-1]
    # Stripe charges a new interval at once unless the subscription is in a trial until the period ends.
    assert update.form.get("trial_end") == (str(period_end) if deferred else None)


def test_change_repeated_with_its_idempotency_key_changes_the_price_once(gateway, fake_billing):
    subscription = fake_billing.add_subscription()

    first = gateway.change_subscription(subscription["id"], amount=2000, currency="EUR", interval="month",
                                        idempotency_key="donations-change-1-a")
    second = gateway.change_subscription(subscription["id"], amount=2000, currency="EUR", interval="month",
                                         idempotency_key="donations-change-1-a")

    assert first == second
    assert len(fake_billing.prices) == 1  # the second answer was Stripe's saved one
    posts = fake_billing.calls("POST", f"/v1/subscriptions/{subscription['id']}")
    assert [post.headers["Idempotency-Key"] for post in posts] == ["donations-change-1-a"] * 2


def test_pause_posts_pause_collection_void_until_the_given_time(gateway, fake_billing):
    subscription = fake_billing.add_subscription()
    resumes_at = int(time.time()) + 60 * 86400

    result = gateway.pause_subscription(subscription["id"], resumes_at=resumes_at)

    [call] = fake_billing.requests
    assert (call.method, call.path) == ("POST", f"/v1/subscriptions/{subscription['id']}")
    assert call.form == {"pause_collection[behavior]": "void", "pause_collection[resumes_at]": str(resumes_at)}
    assert is_plain(result)
    assert result["pause_collection"] == {"behavior": "void", "resumes_at": resumes_at}


def test_resume_unsets_pause_collection_with_an_empty_value(gateway, fake_billing):
    subscription = fake_billing.add_subscription()
    gateway.pause_subscription(subscription["id"], resumes_at=int(time.time()) + 86400)

    result = gateway.resume_subscription(subscription["id"])

    call = fake_billing.last
    assert (call.method, call.path) == ("POST", f"/v1/subscriptions/{subscription['id']}")
    assert call.form == {"pause_collection": ""}
    assert result["pause_collection"] is None


def test_cancel_at_period_end_posts_cancel_at_period_end_true(gateway, fake_billing):
    subscription = fake_billing.add_subscription()

    result = gateway.cancel_subscription(subscription["id"], at_period_end=True)

    [call] = fake_billing.requests
    assert (call.method, call.path) == ("POST", f"/v1/subscriptions/{subscription['id']}")
    assert call.form == {"cancel_at_period_end": "true"}
    assert is_plain(result)
    assert (result["status"], result["cancel_at_period_end"]) == ("active", True)


def test_cancel_now_sends_delete(gateway, fake_billing):
    subscription = fake_billing.add_subscription()

    result = gateway.cancel_subscription(subscription["id"], at_period_end=False)

    [call] = fake_billing.requests
    assert (call.method, call.path) == ("DELETE", f"/v1/subscriptions/{subscription['id']}")
    assert is_plain(result)
    assert result["status"] == "canceled" and result["canceled_at"]


def test_portal_session_posts_the_customer_and_return_url_and_returns_its_url(gateway, fake_billing):
    subscription = fake_billing.add_subscription(customer="cus_123")

    url = gateway.create_portal_session("cus_123", f"{PUBLIC}/account/tok", f"{PUBLIC}/account/tok/card-updated")

    [call] = fake_billing.requests
    assert (call.method, call.path) == ("POST", "/v1/billing_portal/sessions")
    assert call.form == {"customer": "cus_123", "return_url": f"{PUBLIC}/account/tok",
                         "flow_data[type]": "payment_method_update",
                         "flow_data[after_completion][type]": "redirect",
                         "flow_data[after_completion][redirect][return_url]": f"{PUBLIC}/account/tok/card-updated"}
    [session] = fake_billing.portal_sessions.values()
    assert url == session["url"] and url.startswith("https://billing.stripe.com/p/session/")
    assert subscription["customer"] == session["customer"]


# -- when Stripe refuses -----------------------------------------------------------------------------------


CALLS = {
    "change": lambda g, sid: g.change_subscription(sid, amount=1200, currency="EUR", interval="month",
                                                   idempotency_key=f"k-{uuid.uuid4()}"),
    "pause": lambda g, sid: g.pause_subscription(sid, resumes_at=int(time.time()) + 86400),
    "resume": lambda g, sid: g.resume_subscription(sid),
    "cancel-at-period-end": lambda g, sid: g.cancel_subscription(sid, at_period_end=True),
    "cancel-now": lambda g, sid: g.cancel_subscription(sid, at_period_end=False),
    "portal": lambda g, sid: g.create_portal_session("cus_known", f"{PUBLIC}/account/tok"),
}


@pytest.mark.parametrize("status", [500, 400, 401, 429])
@pytest.mark.parametrize("name", list(CALLS))
def test_stripe_errors_on_subscription_calls_become_gateway_errors(gateway, fake_billing, caplog, name, status):
    subscription = fake_billing.add_subscription(customer="cus_known")
    fake_billing.fail_next(status)

    with pytest.raises(GatewayError, match="Nothing was charged") as raised:
        CALLS[name](gateway, subscription["id"])

    assert raised.value.answered is True
    assert "Stripe refused" in caplog.text
    assert (subscription["id"] if name != "portal" else "cus_known") in caplog.text  # names what failed


@pytest.mark.parametrize("name", [n for n in CALLS if n != "portal"])
def test_unknown_subscription_is_a_gateway_error(gateway, fake_billing, name):
    with pytest.raises(GatewayError) as raised:
        CALLS[name](gateway, "sub_unknown")

    assert raised.value.answered is True
    assert fake_billing.requests and all(r.path == "/v1/subscriptions/sub_unknown" for r in fake_billing.requests)


def test_updating_a_canceled_subscription_is_a_gateway_error(gateway, fake_billing):
    subscription = fake_billing.add_subscription()
    gateway.cancel_subscription(subscription["id"], at_period_end=False)

    with pytest.raises(GatewayError):
        gateway.pause_subscription(subscription["id"], resumes_at=int(time.time()) + 86400)


def test_unreachable_stripe_is_an_unanswered_gateway_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = StripeGateway(SECRET_KEY, f"http://127.0.0.1:{port}")

    with pytest.raises(GatewayError) as raised:
        gateway.cancel_subscription("sub_123", at_period_end=True)

    assert raised.value.answered is False


# -- one interface, two gateways -------------------------------------------------------------------------


INTERFACE = sorted(name for name, value in vars(PaymentGateway).items()
                   if inspect.isfunction(value) and not name.startswith("_"))


def test_the_interface_has_the_subscription_methods():
    assert {"cancel_subscription", "change_subscription", "create_checkout_session", "create_portal_session",
            "pause_subscription", "resume_subscription"} <= set(INTERFACE)


@pytest.mark.parametrize("name", INTERFACE)
@pytest.mark.parametrize("implementation", [SandboxGateway, StripeGateway], ids=["sandbox", "stripe"])
def test_both_gateways_implement_every_method_with_the_interfaces_signature(implementation, name):
    method = getattr(implementation, name, None)

    assert callable(method), f"{implementation.__name__} lacks {name}"
    assert inspect.signature(method) == inspect.signature(getattr(PaymentGateway, name))
    assert isinstance(implementation.name, str) and implementation.name


@pytest.mark.parametrize("make", [lambda: StripeGateway(SECRET_KEY), SandboxGateway], ids=["stripe", "sandbox"])
def test_both_gateways_are_payment_gateways(make):
    assert isinstance(make(), PaymentGateway)


# -- the account page with Stripe behind it ---------------------------------------------------------------


@pytest.fixture
def stripe_gift(app, app_ctx, client, fake_billing, monkeypatch):
    """A €10.00 monthly gift held at the fake Stripe, and the app taking payments through it."""
    monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway(SECRET_KEY, fake_billing.url))
    subscription = fake_billing.add_subscription(amount=1000, interval="month", customer="cus_reader")
    person = Supporter(email="reader@example.com", name="Ada Reader", stripe_customer_id="cus_reader")
    recurring = RecurringDonation(supporter=person, amount=1000, currency="EUR", frequency=Frequency.MONTHLY,
                                  status=RecurringStatus.ACTIVE, stripe_subscription_id=subscription["id"],
                                  stripe_customer_id="cus_reader")
    db.session.add_all([person, recurring])
    db.session.commit()
    return recurring


def account_path(recurring: RecurringDonation) -> str:
    return manage_url(recurring.supporter.id, recurring.supporter.email).removeprefix(PUBLIC)


def post_action(client, recurring: RecurringDonation, action: str, **fields):
    path = account_path(recurring)
    page = client.get(path).get_data(as_text=True)
    data = {"csrf_token": hidden_value(page, "csrf_token"), **fields}
    if action == "change":
        data.setdefault("token", hidden_value(page, "token"))
    return client.post(f"{path}/gifts/{recurring.id}/{action}", data=data)


def reloaded(recurring: RecurringDonation) -> RecurringDonation:
    db.session.expire_all()
    return db.session.get(RecurringDonation, recurring.id)


def test_change_on_the_account_page_uses_the_forms_token_as_the_idempotency_key(stripe_gift, client,
                                                                               fake_billing):
    response = post_action(client, stripe_gift, "change", amount="15.00", frequency="yearly", token="form-123")

    assert response.status_code == 303
    update = fake_billing.calls("POST", f"/v1/subscriptions/{stripe_gift.stripe_subscription_id}")[-1]
    assert update.headers["Idempotency-Key"] == f"donations-change-{stripe_gift.id}-form-123"
    recurring = reloaded(stripe_gift)
    assert (recurring.amount, recurring.frequency) == (1500, Frequency.YEARLY)


def test_cancel_now_on_the_account_page_deletes_the_subscription(stripe_gift, client, fake_billing):
    response = post_action(client, stripe_gift, "cancel", when="now")

    assert response.status_code == 303
    assert fake_billing.calls("DELETE", f"/v1/subscriptions/{stripe_gift.stripe_subscription_id}")
    assert reloaded(stripe_gift).status is RecurringStatus.CANCELED
    assert db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "recurring_canceled")).one()


def test_stripe_failure_on_the_account_page_is_flashed_and_changes_nothing(stripe_gift, client, fake_billing):
    fake_billing.fail_next(500)

    response = post_action(client, stripe_gift, "cancel", when="now")

    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert UNAVAILABLE in page
    assert fake_billing.subscriptions[stripe_gift.stripe_subscription_id]["status"] == "active"
    assert reloaded(stripe_gift).status is RecurringStatus.ACTIVE
    assert db.session.scalars(select(OutboxEmail)).all() == []


def test_update_card_redirects_to_the_stripe_portal_which_returns_to_the_account_page(stripe_gift, client,
                                                                                       fake_billing):
    response = post_action(client, stripe_gift, "card")

    assert response.status_code == 303
    [session] = fake_billing.portal_sessions.values()
    assert response.headers["Location"] == session["url"]
    assert session["customer"] == "cus_reader"
    # The portal opens on the card update. Leaving it goes back to the account page; a saved card goes through
    # the card-updated step, which says so. Both are manage links (signed a moment ago: compared by what they open).
    assert session["flow"]["[type]"] == "payment_method_update"
    assert session["flow"]["[after_completion][type]"] == "redirect"
    updated = session["flow"]["[after_completion][redirect][return_url]"]
    assert updated.endswith("/card-updated")
    for url in (session["return_url"], updated.removesuffix("/card-updated")):
        assert url.startswith(f"{PUBLIC}/account/")
        assert read_token(url.removeprefix(f"{PUBLIC}/account/")) == (
            stripe_gift.supporter.id, stripe_gift.supporter.email)


# -- fees: the balance transaction behind a payment ------------------------------------------------------


def _intent(intent_id: str, balance: dict | None) -> dict:
    charge = {"id": "ch_1", "object": "charge", "amount": 2500, "currency": "usd",
              "balance_transaction": balance if balance is not None else "txn_pending"}
    return {"id": intent_id, "object": "payment_intent", "amount": 2500, "currency": "usd",
            "status": "succeeded", "latest_charge": charge}


def test_payment_balance_reads_fee_net_and_exchange_rate_of_the_charge(gateway, fake_billing):
    balance = {"id": "txn_1", "object": "balance_transaction", "type": "charge", "amount": 2291, "currency": "eur",
               "fee": 59, "net": 2232, "exchange_rate": 0.91632}
    fake_billing.payment_intents["pi_1"] = _intent("pi_1", balance)

    result = gateway.payment_balance("pi_1")

    assert fake_billing.last.path == "/v1/payment_intents/pi_1"
    assert (result["fee"], result["net"], result["currency"], result["exchange_rate"]) == (59, 2232, "eur", 0.91632)


def test_payment_balance_is_none_until_stripe_has_settled_the_charge(gateway, fake_billing):
    fake_billing.payment_intents["pi_2"] = _intent("pi_2", None)

    assert gateway.payment_balance("pi_2") is None


def test_payment_balance_of_an_unknown_payment_is_a_gateway_error(gateway, fake_billing):
    with pytest.raises(GatewayError):
        gateway.payment_balance("pi_unknown")
