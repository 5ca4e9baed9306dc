"""Concurrent requests on PostgreSQL: each from its own thread, client and connection, with real commits.

Stripe delivers events at least once, possibly several at a time, and clients retry requests;
whatever the interleaving, one gift is booked once, with one receipt, and receipt numbers
stay unique and gap-free. These tests skip unless TEST_DATABASE_URL points at PostgreSQL
(SQLite serialises writers, so it cannot show these races).
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, ReceiptSequence, StripeEvent
from donations.mail.models import OutboxEmail
from donations.payments.stripe_gateway import StripeGateway
from tests.conftest import run_threads
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.stripe_fake import fake_stripe  # noqa: F401  (registers the fixture)

THREADS = 20


def counts(app) -> tuple[int, int, int]:
    """(donations, outbox emails, stored Stripe events)."""
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (Donation, OutboxEmail, StripeEvent))


def committed_attempts(app, emails: list[str]) -> list[CheckoutAttempt]:
    """Attempts as the donation form leaves them, committed so that every thread sees them."""
    with app.app_context():
        attempts = [make_attempt(email=email) for email in emails]
        db.session.commit()
        for attempt in attempts:
            db.session.refresh(attempt)
            db.session.expunge(attempt)
        return attempts


def deliver_concurrently(app, events: list[dict]) -> list:
    """POST each event to /stripe/webhook from its own thread, all at once; returns the responses."""
    return run_threads(len(events), lambda i: post_event(app.test_client(), events[i]))


def statuses(results: list) -> list:
    return [r if isinstance(r, Exception) else r.status_code for r in results]


def test_one_event_delivered_twenty_times_at_once_books_one_donation_and_one_receipt(postgres, committing_app):
    [attempt] = committed_attempts(committing_app, ["reader@example.com"])
    evt = event("checkout.session.completed", checkout_session(attempt))

    results = deliver_concurrently(committing_app, [evt] * THREADS)

    assert statuses(results) == [200] * THREADS
    outcomes = sorted(r.get_json()["outcome"] for r in results)
    assert outcomes.count("duplicate") == THREADS - 1
    assert counts(committing_app) == (1, 1, 1)


def test_twenty_different_events_about_one_session_at_once_book_one_donation_and_one_receipt(postgres,
                                                                                            committing_app):
    [attempt] = committed_attempts(committing_app, ["reader@example.com"])
    session = checkout_session(attempt)
    types = ["checkout.session.completed", "checkout.session.async_payment_succeeded"]
    events = [event(types[i % 2], session) for i in range(THREADS)]  # each with its own event id

    results = deliver_concurrently(committing_app, events)

    assert statuses(results) == [200] * THREADS
    assert counts(committing_app) == (1, 1, THREADS)
    with committing_app.app_context():
        donation = db.session.scalars(select(Donation)).one()
        assert donation.status is DonationStatus.SUCCEEDED
        email = db.session.scalars(select(OutboxEmail)).one()
        assert email.dedupe_key == f"receipt:{donation.id}"


def test_gifts_paid_at_the_same_moment_get_consecutive_receipt_numbers(postgres, committing_app):
    created = int(time.time())
    year = datetime.fromtimestamp(created, timezone.utc).year
    with committing_app.app_context():
        before = db.session.scalar(select(ReceiptSequence.last_number).where(ReceiptSequence.year == year)) or 0
    attempts = committed_attempts(committing_app, [f"reader{i}@example.com" for i in range(THREADS)])
    events = [event("checkout.session.completed", checkout_session(a), created=created) for a in attempts]

    results = deliver_concurrently(committing_app, events)

    assert statuses(results) == [200] * THREADS
    with committing_app.app_context():
        numbers = sorted(db.session.scalars(select(Donation.receipt_number)))
        last = db.session.scalar(select(ReceiptSequence.last_number).where(ReceiptSequence.year == year))
        receipts = db.session.scalar(select(func.count()).select_from(OutboxEmail))
    assert numbers == [f"{year}-{n:06d}" for n in range(before + 1, before + THREADS + 1)]
    assert last == before + THREADS
    assert receipts == THREADS


API = "/api/v1/checkout-sessions"
BODY = {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
        "email": "a@example.com", "article_url": "https://publisher.example/a"}


@pytest.fixture
def stripe_app(committing_app, fake_stripe, monkeypatch):  # noqa: F811
    monkeypatch.setitem(committing_app.extensions, "payment_gateway", StripeGateway("sk_test_123", fake_stripe.url))
    return committing_app


def in_thread(fn) -> tuple[threading.Thread, list]:
    result: list = []

    def run():
        try:
            result.append(fn())
        except Exception as exc:  # reported to the test
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def wait_until_a_request_waits_for_a_lock(app, statement_start: str) -> None:
    deadline = time.monotonic() + 10
    with app.app_context():
        while time.monotonic() < deadline:
            waiting = db.session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE :start"), {"start": statement_start + "%"})
            db.session.rollback()  # pg_stat_activity is read once per transaction
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError(f"no request waited on a lock in {statement_start!r}")


def test_retry_sent_while_the_first_request_waits_for_stripe_gets_the_same_checkout(postgres, stripe_app,
                                                                                   fake_stripe):  # noqa: F811
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    hold = fake_stripe.hold_next()
    first, first_result = in_thread(lambda: stripe_app.test_client().post(API, json=BODY, headers=headers))
    assert hold.arrived.wait(10)
    retry, retry_result = in_thread(lambda: stripe_app.test_client().post(API, json=BODY, headers=headers))

    # The retry waits on the first request's uncommitted attempt until Stripe answers the first.
    wait_until_a_request_waits_for_a_lock(stripe_app, "INSERT INTO checkout_attempts")
    hold.release.set()
    first.join(30)
    retry.join(30)

    assert [r.status_code for r in first_result + retry_result] == [201, 201]
    assert first_result[0].get_json() == retry_result[0].get_json()
    assert len(fake_stripe.calls()) == 1
    with stripe_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CheckoutAttempt)) == 1


def test_retry_sent_as_the_first_request_commits_gets_the_same_checkout(postgres, stripe_app,
                                                                        fake_stripe):  # noqa: F811
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    retry_started, first_done = threading.Event(), threading.Event()
    retry_ident: list[int] = []

    def let_the_first_commit_after_the_retrys_first_read(conn, cursor, statement, parameters, context, many):
        if threading.get_ident() not in retry_ident or retry_started.is_set():
            return
        if statement.startswith("INSERT INTO checkout_attempts"):
            retry_started.set()  # the retry claims the attempt before reading it: no window to open
        elif statement.startswith("SELECT") and "FROM checkout_attempts" in statement:
            retry_started.set()  # the retry found no attempt yet...
            first_done.wait(10)

    def send_retry():
        retry_ident.append(threading.get_ident())
        return stripe_app.test_client().post(API, json=BODY, headers=headers)

    with stripe_app.app_context():
        engine = db.engine
    sa_event.listen(engine, "after_cursor_execute", let_the_first_commit_after_the_retrys_first_read)
    try:
        retry, retry_result = in_thread(send_retry)
        assert retry_started.wait(10)
        first = stripe_app.test_client().post(API, json=BODY, headers=headers)  # ...and the first one completes
        first_done.set()
        retry.join(30)
    finally:
        first_done.set()
        sa_event.remove(engine, "after_cursor_execute", let_the_first_commit_after_the_retrys_first_read)

    assert [r.status_code for r in [first, *retry_result]] == [201, 201]
    assert first.get_json() == retry_result[0].get_json()
    assert len(fake_stripe.calls()) == 1
