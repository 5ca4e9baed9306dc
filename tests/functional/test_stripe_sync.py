"""Fault injection, scenario 6: a webhook that never arrived. The payments.sync_events job lists Stripe's events
(GET /v1/events, https://docs.stripe.com/api/events/list) and books those never stored, through the webhook's
own path. Against a fake Stripe on loopback, through the real StripeGateway; and against the sandbox."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger import operations as ledger
from donations.ledger.models import Donation, StripeEvent
from donations.mail.models import OutboxEmail
from donations.payments import sandbox_gateway
from donations.payments.gateway import GatewayError
from donations.payments.stripe_gateway import StripeGateway
from donations.payments.sync import MARGIN, sync_events
from donations.payments.webhooks import HANDLED_TYPES, dispatch
from donations.scheduler import build_scheduler
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.stripe_fake import SERVER_ERROR, FakeStripe, RecordedRequest, _json, serving

SECRET_KEY = "sk_test_123"


@dataclass
class FakeStripeEvents(FakeStripe):
    """FakeStripe plus GET /v1/events with ``created[gte]``, ``types[]`` and Stripe's pagination, newest first."""

    events: list[dict] = field(default_factory=list)
    page_size: int = 2
    #: Answer 500 to requests for a second or later page (Stripe failing in the middle of a listing).
    fail_later_pages: bool = False

    def _respond(self, req: RecordedRequest):
        if (req.method, req.path) != ("GET", "/v1/events"):
            return super()._respond(req)
        if not req.headers.get("Authorization", "").startswith("Bearer sk_test_"):
            return _json(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}})
        if self.fail_later_pages and req.query.get("starting_after"):
            return _json(500, {"error": SERVER_ERROR}, {"Stripe-Should-Retry": "false"})
        since = int(req.query.get("created[gte]", "0"))
        types = {value for key, value in req.query.items() if key.startswith("types[")}
        found = [e for e in sorted(self.events, key=lambda e: e["created"], reverse=True)
                 if e["created"] >= since and (not types or e["type"] in types)]
        start = 0
        if req.query.get("starting_after"):
            start = [e["id"] for e in found].index(req.query["starting_after"]) + 1
        size = min(int(req.query.get("limit", 10)), self.page_size)
        return _json(200, {"object": "list", "url": "/v1/events", "data": found[start:start + size],
                           "has_more": start + size < len(found)})

    def listings(self) -> list[RecordedRequest]:
        return self.calls("GET", "/v1/events")


@pytest.fixture
def stripe_events(app, monkeypatch):
    with serving(FakeStripeEvents(), monkeypatch) as fake:
        monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway(SECRET_KEY, fake.url))
        yield fake


def missed_gift(fake: FakeStripeEvents, email: str = "ada@example.com", amount: int = 2500, ago: int = 600) -> dict:
    """A paid gift whose checkout.session.completed exists only on Stripe's side: its webhook never came."""
    attempt = make_attempt(email=email, amount=amount)
    db.session.commit()
    evt = event("checkout.session.completed", checkout_session(attempt), created=int(time.time()) - ago)
    fake.events.append(evt)
    return evt


def donations_of(evt: dict) -> int:
    session_id = evt["data"]["object"]["id"]
    return db.session.scalar(select(func.count()).select_from(Donation)
                             .where(Donation.stripe_checkout_session_id == session_id))


def receipts_to(address: str) -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.to_address == address, OutboxEmail.template == "receipt"))


def test_a_gift_whose_webhook_never_arrived_is_booked_once_by_the_job(app_ctx, stripe_events):
    evt = missed_gift(stripe_events)
    before = int(time.time())

    assert sync_events() == {"listed": 1, "new": 1, "failed": 0}

    assert donations_of(evt) == 1 and receipts_to("ada@example.com") == 1
    stored = db.session.get(StripeEvent, evt["id"])
    assert stored.processed_at is not None and stored.outcome.endswith("succeeded")
    [first] = stripe_events.listings()
    assert abs(int(first.query["created[gte]"]) - (before - 3 * 86400)) <= 5  # first run: STRIPE_SYNC_FIRST_DAYS
    assert {v for k, v in first.query.items() if k.startswith("types[")} == set(HANDLED_TYPES)

    assert sync_events() == {"listed": 1, "new": 0, "failed": 0}  # a second run books nothing

    assert donations_of(evt) == 1 and receipts_to("ada@example.com") == 1
    second = stripe_events.listings()[-1]
    # the second run reads on from where the first began, less the margin
    assert abs(int(second.query["created[gte]"]) - (before - int(MARGIN.total_seconds()))) <= 5


def test_an_event_received_by_webhook_is_not_processed_again(app_ctx, client, stripe_events):
    attempt = make_attempt(email="hooked@example.com")
    db.session.commit()
    delivered = event("checkout.session.completed", checkout_session(attempt), created=int(time.time()) - 900)
    assert post_event(client, delivered).status_code == 200
    stripe_events.events.append(delivered)
    processed_at = db.session.get(StripeEvent, delivered["id"]).processed_at
    missed = missed_gift(stripe_events, email="missed@example.com")

    assert sync_events() == {"listed": 2, "new": 1, "failed": 0}

    db.session.expire_all()
    assert db.session.get(StripeEvent, delivered["id"]).processed_at == processed_at
    assert donations_of(delivered) == 1 and receipts_to("hooked@example.com") == 1
    assert donations_of(missed) == 1 and receipts_to("missed@example.com") == 1


def test_every_page_of_the_list_is_followed(app_ctx, stripe_events):
    missed = [missed_gift(stripe_events, email=f"reader{n}@example.com", ago=600 - n) for n in range(5)]

    assert sync_events() == {"listed": 5, "new": 5, "failed": 0}

    assert [donations_of(evt) for evt in missed] == [1] * 5
    pages = stripe_events.listings()
    assert len(pages) == 3 and [p.query.get("starting_after") for p in pages[1:]] == [missed[3]["id"], missed[1]["id"]]


def test_stripe_unreachable_fails_the_run_and_books_nothing_then_the_next_run_catches_up(app_ctx, stripe_events,
                                                                                      monkeypatch):
    evt = missed_gift(stripe_events)
    gateway = app_ctx.extensions["payment_gateway"]
    monkeypatch.setitem(app_ctx.extensions, "payment_gateway",
                        StripeGateway(SECRET_KEY, "http://127.0.0.1:9", max_network_retries=0))  # nobody there

    with pytest.raises(GatewayError):
        sync_events()
    assert donations_of(evt) == 0

    monkeypatch.setitem(app_ctx.extensions, "payment_gateway", gateway)
    assert sync_events() == {"listed": 1, "new": 1, "failed": 0}
    assert donations_of(evt) == 1


def test_stripe_failing_in_the_middle_of_the_list_books_nothing(app_ctx, stripe_events):
    missed = [missed_gift(stripe_events, email=f"reader{n}@example.com", ago=600 - n) for n in range(3)]
    stripe_events.fail_later_pages = True

    with pytest.raises(GatewayError):
        sync_events()
    assert [donations_of(evt) for evt in missed] == [0, 0, 0]

    stripe_events.fail_later_pages = False
    assert sync_events()["new"] == 3


def test_one_event_that_fails_does_not_stop_the_others_and_is_booked_by_a_later_run(app_ctx, stripe_events,
                                                                                   monkeypatch):
    bad = missed_gift(stripe_events, email="bad@example.com", ago=700)
    good = missed_gift(stripe_events, email="good@example.com", ago=600)
    real = ledger.record_checkout_session

    def flaky(session, **kwargs):
        if session["id"] == bad["data"]["object"]["id"]:
            raise RuntimeError("database hiccup")
        return real(session, **kwargs)

    monkeypatch.setattr(ledger, "record_checkout_session", flaky)
    assert sync_events() == {"listed": 2, "new": 1, "failed": 1}
    assert donations_of(bad) == 0 and donations_of(good) == 1
    assert db.session.get(StripeEvent, bad["id"]) is None  # not stored, so not taken for received

    monkeypatch.setattr(ledger, "record_checkout_session", real)
    assert sync_events() == {"listed": 2, "new": 1, "failed": 0}
    assert donations_of(bad) == 1 and donations_of(good) == 1


def test_events_of_types_the_webhook_ignores_are_not_stored(app_ctx, stripe_events):
    stripe_events.events.append(event("customer.created", {"id": "cus_1", "object": "customer"}))
    missed = missed_gift(stripe_events)

    assert sync_events() == {"listed": 1, "new": 1, "failed": 0}  # Stripe filters by types; so does the fake
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 1
    assert donations_of(missed) == 1


def test_handled_types_are_exactly_what_the_webhook_dispatches(app_ctx):
    import inspect
    import re

    cases = set(re.findall(r'"([a-z_.]+)"', "".join(
        line for line in inspect.getsource(dispatch).splitlines() if line.strip().startswith("case "))))
    assert cases == set(HANDLED_TYPES) and len(HANDLED_TYPES) <= 20  # Stripe's limit for ``types``
    assert dispatch(event("customer.created", {"id": "cus_1"})) == "ignored: event type not handled"


def test_the_sandbox_books_an_event_it_stored_but_never_delivered(app_ctx, client, monkeypatch):
    attempt = make_attempt(email="sandbox@example.com")
    db.session.commit()
    monkeypatch.setattr(sandbox_gateway, "deliver", lambda evt: 503)  # the delivery is lost on the way
    assert sandbox_gateway.pay(attempt.checkout_session_id, "4242424242424242").paid
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 0

    counts = sync_events()

    assert counts == {"listed": 1, "new": 1, "failed": 0}  # payment_intent.succeeded is not asked for
    donation = db.session.scalars(select(Donation).where(
        Donation.stripe_checkout_session_id == attempt.checkout_session_id)).one()
    assert donation.amount == attempt.amount and receipts_to("sandbox@example.com") == 1
    assert sync_events()["new"] == 0


def test_the_job_is_registered_at_the_configured_interval(app, monkeypatch):
    job = {j.id: j for j in build_scheduler(app).get_jobs()}["payments.sync_events"]
    assert job.trigger.interval == timedelta(seconds=300)
    monkeypatch.setitem(app.config, "STRIPE_SYNC_INTERVAL_SECONDS", 60)
    job = {j.id: j for j in build_scheduler(app).get_jobs()}["payments.sync_events"]
    assert job.trigger.interval == timedelta(seconds=60)
    assert job.args[1] is sync_events


# -- flask --app app stripe sync --since … ------------------------------------------------------------

def run_cli(app, *args):
    return app.test_cli_runner().invoke(args=["stripe", "sync", *args])


def test_the_command_books_missed_events_since_the_given_time(app_ctx, stripe_events):
    evt = missed_gift(stripe_events)
    since = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(days=2)

    result = run_cli(app_ctx, "--since", since.strftime("%Y-%m-%dT%H:%M"))

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "listed 1, booked 1, failed 0"
    assert int(stripe_events.listings()[0].query["created[gte]"]) == int(since.timestamp())
    assert donations_of(evt) == 1
    assert run_cli(app_ctx, "--since", since.date().isoformat()).output.strip() == "listed 1, booked 0, failed 0"


@pytest.mark.parametrize("value, message", [
    ("2026-02-30", "is not a date (YYYY-MM-DD) or a time"),
    ("yesterday", "is not a date (YYYY-MM-DD) or a time"),
    ("2999-01-01", "is in the future"),
    ("2020-01-01", "Stripe keeps events for 30 days"),
])
def test_the_command_refuses_bad_dates_and_asks_stripe_nothing(app_ctx, stripe_events, value, message):
    result = run_cli(app_ctx, "--since", value)

    assert result.exit_code == 2 and message in result.output
    assert stripe_events.listings() == []


def test_the_command_says_when_stripe_cannot_be_reached(app_ctx, monkeypatch):
    monkeypatch.setitem(app_ctx.extensions, "payment_gateway",
                        StripeGateway(SECRET_KEY, "http://127.0.0.1:9", max_network_retries=0))

    result = run_cli(app_ctx)

    assert result.exit_code == 1
    assert "error: Stripe could not be asked for its events" in result.output and "nothing was booked" in result.output


def test_a_run_with_a_failed_event_does_not_move_on_so_the_next_run_lists_it_again(app_ctx, stripe_events,
                                                                                    monkeypatch):
    from donations.payments import sync

    evt = missed_gift(stripe_events)
    real = sync.receive_event
    monkeypatch.setattr(sync, "receive_event", lambda event: (_ for _ in ()).throw(RuntimeError("handler broke")))
    assert sync_events() == {"listed": 1, "new": 0, "failed": 1}
    first = stripe_events.listings()[-1].query["created[gte]"]

    monkeypatch.setattr(sync, "receive_event", real)
    assert sync_events() == {"listed": 1, "new": 1, "failed": 0}

    assert stripe_events.listings()[-1].query["created[gte]"] == first  # looked from the same point again
    assert donations_of(evt) == 1
