"""Stripe's deliveries over HTTP to the app in its own process, on PostgreSQL (fault-injection scenarios 1 and 2).

Stripe delivers at least once, sometimes several copies at a time, and may tell the same news in different
events. However they arrive, a gift is one donation with one receipt, and every delivery is answered 200.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.ledger.models import Donation
from tests.conftest import run_threads
from tests.factories import checkout_session, event, make_attempt
from tests.recurring_payloads import T0, Gift, make_recurring_attempt
from tests.slow.conftest import books, committed

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def statuses(answers: list) -> list:
    return [a if isinstance(a, Exception) else a.status for a in answers]


def test_one_event_delivered_fifty_times_in_a_row_books_one_donation_and_one_receipt(start_app, committing_app):
    live = start_app()
    attempt = committed(committing_app, make_attempt)
    evt = event("checkout.session.completed", checkout_session(attempt))

    answers = [live.deliver(evt) for _ in range(50)]

    assert statuses(answers) == [200] * 50
    assert answers[0].json["outcome"].endswith("succeeded")
    assert {a.json["outcome"] for a in answers[1:]} == {"duplicate"}
    assert books(committing_app) == {"donations": 1, "succeeded": 1, "receipts": 1, "emails": 1,
                                     "events": 1, "processed": 1}


def test_one_event_delivered_twenty_times_at_once_books_one_donation_and_one_receipt(start_app, committing_app):
    live = start_app()
    attempt = committed(committing_app, make_attempt)
    evt = event("checkout.session.completed", checkout_session(attempt))

    answers = run_threads(20, lambda i: live.deliver(evt))

    assert statuses(answers) == [200] * 20
    outcomes = [a.json["outcome"] for a in answers]
    assert outcomes.count("duplicate") == 19
    assert books(committing_app) == {"donations": 1, "succeeded": 1, "receipts": 1, "emails": 1,
                                     "events": 1, "processed": 1}


def test_completed_and_async_succeeded_events_about_one_session_at_once_book_one_donation(start_app, committing_app):
    live = start_app()
    attempt = committed(committing_app, make_attempt)
    session = checkout_session(attempt)
    completed = event("checkout.session.completed", session)
    succeeded = event("checkout.session.async_payment_succeeded", session)  # another event id, the same news

    answers = run_threads(20, lambda i: live.deliver(completed if i % 2 else succeeded))

    assert statuses(answers) == [200] * 20
    assert books(committing_app) == {"donations": 1, "succeeded": 1, "receipts": 1, "emails": 1,
                                     "events": 2, "processed": 2}
    with committing_app.app_context():
        donation = db.session.scalars(select(Donation)).one()
        assert donation.stripe_checkout_session_id == session["id"]


def test_one_paid_invoice_under_two_event_ids_at_once_books_one_donation(start_app, committing_app):
    live = start_app()
    gift = Gift(committed(committing_app, make_recurring_attempt))
    for evt in (event("customer.subscription.created", gift.subscription(), created=T0),
                event("checkout.session.completed", gift.checkout(created=T0 + 2), created=T0 + 2),
                event("customer.subscription.updated", gift.subscription(), created=T0 + 3)):
        assert live.deliver(evt).status == 200
    paid = gift.invoice()
    first, second = (event("invoice.paid", paid, created=T0 + 1) for _ in range(2))
    assert first["id"] != second["id"]

    answers = run_threads(20, lambda i: live.deliver(first if i % 2 else second))

    assert statuses(answers) == [200] * 20
    assert books(committing_app) == {"donations": 1, "succeeded": 1, "receipts": 1, "emails": 1,
                                     "events": 5, "processed": 5}
    with committing_app.app_context():
        assert db.session.scalars(select(Donation)).one().stripe_invoice_id == paid["id"]
