"""Events about one recurring gift delivered at the same moment, on PostgreSQL with real commits.

Stripe delivers at least once and may send the same news in several events at a time; whatever the
interleaving, a paid invoice is one donation with one receipt, a declined attempt one dunning email,
a subscription one recurring gift, and every delivery is answered 200. These tests skip unless
TEST_DATABASE_URL points at PostgreSQL (SQLite serialises writers, so it cannot show these races).
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, RecurringDonation, RecurringStatus, StripeEvent
from donations.mail.models import OutboxEmail
from tests.conftest import run_threads
from tests.factories import event, post_event
from tests.recurring_payloads import MONTHS, T0, Gift, make_recurring_attempt, new_id

THREADS = 20


def committed_gift(app, *, checkout_delivered: bool) -> Gift:
    """A monthly attempt as the donation form leaves it, committed so every thread sees it.

    With ``checkout_delivered``, the subscription's creation, the checkout and Stripe's later snapshot of the
    active subscription have been processed too. The gift's status and period are then newer than the first
    invoice, which changes nothing on the gift's row: no row update of the gift, only the ledger's own locks
    can make concurrent deliveries of that invoice wait for each other.
    """
    with app.app_context():
        attempt = make_recurring_attempt(amount=1000)
        db.session.commit()
        db.session.refresh(attempt)
        db.session.expunge(attempt)
    gift = Gift(attempt)
    if checkout_delivered:
        client = app.test_client()
        for evt in (event("customer.subscription.created", gift.subscription(), created=T0),
                    event("checkout.session.completed", gift.checkout(), created=T0 + 2),
                    event("customer.subscription.updated", gift.subscription(), created=T0 + 3)):
            assert post_event(client, evt).status_code == 200
    return gift


def deliver_concurrently(app, events: list[dict]) -> list:
    """POST each event to /stripe/webhook from its own thread, all at once; returns the responses."""
    return run_threads(len(events), lambda i: post_event(app.test_client(), events[i]))


def statuses(results: list) -> list:
    return [r if isinstance(r, Exception) else r.status_code for r in results]


def ledger(app, template: str) -> dict:
    with app.app_context():
        def count(model, *where):
            return db.session.scalar(select(func.count()).select_from(model).where(*where))

        return {
            "recurring gifts": count(RecurringDonation),
            "donations": count(Donation),
            "emails": count(OutboxEmail, OutboxEmail.template == template),
            "all emails": count(OutboxEmail),
            "events": count(StripeEvent),
        }


def test_paid_invoice_delivered_twenty_times_at_once_books_one_donation_and_one_receipt(postgres,
                                                                                      committing_app):
    gift = committed_gift(committing_app, checkout_delivered=True)
    evt = event("invoice.paid", gift.invoice(), created=T0 + 1)

    results = deliver_concurrently(committing_app, [evt] * THREADS)

    assert statuses(results) == [200] * THREADS
    assert sorted(r.get_json()["outcome"] for r in results).count("duplicate") == THREADS - 1
    assert ledger(committing_app, "receipt") == {
        "recurring gifts": 1, "donations": 1, "emails": 1, "all emails": 1, "events": 4}


#: How the twenty events about one paid invoice reach us.
DIFFERENT_EVENTS = {
    # The gift exists; every event carries our metadata and waits on the attempt's lock.
    "gift known": dict(checkout_delivered=True, metadata=True),
    # The first news of the gift: twenty threads would each create it.
    "first news of the gift": dict(checkout_delivered=False, metadata=True),
    # The gift exists and the invoice carries no metadata: only the gift's own row lock serialises them.
    "gift known, invoice without metadata": dict(checkout_delivered=True, metadata=False),
}


@pytest.mark.parametrize("case", DIFFERENT_EVENTS)
def test_twenty_events_about_one_paid_invoice_at_once_book_one_donation_and_one_receipt(postgres,
                                                                                       committing_app, case):
    options = DIFFERENT_EVENTS[case]
    gift = committed_gift(committing_app, checkout_delivered=options["checkout_delivered"])
    paid = gift.invoice() if options["metadata"] else gift.invoice(metadata={})
    events = [event("invoice.paid", paid, created=T0 + 1) for _ in range(THREADS)]  # each its own event id

    results = deliver_concurrently(committing_app, events)

    assert statuses(results) == [200] * THREADS
    stored = THREADS + (3 if options["checkout_delivered"] else 0)
    assert ledger(committing_app, "receipt") == {
        "recurring gifts": 1, "donations": 1, "emails": 1, "all emails": 1, "events": stored}
    with committing_app.app_context():
        donation = db.session.scalars(select(Donation)).one()
        assert (donation.stripe_invoice_id, donation.status) == (paid["id"], DonationStatus.SUCCEEDED)
        assert donation.recurring_donation.status is RecurringStatus.ACTIVE
        assert db.session.scalars(select(OutboxEmail)).one().dedupe_key == f"receipt:{donation.id}"


def test_first_events_of_a_gift_arriving_together_create_one_recurring_gift_and_one_donation(postgres,
                                                                                            committing_app):
    gift = committed_gift(committing_app, checkout_delivered=False)
    first = gift.invoice()
    kinds = [("checkout.session.completed", gift.checkout(created=T0 + 2), T0 + 2),
             ("customer.subscription.created", gift.subscription(), T0),
             ("invoice.paid", first, T0 + 1)]
    events = [event(kind, obj, created=created) for kind, obj, created in (kinds * THREADS)[:THREADS]]

    results = deliver_concurrently(committing_app, events)

    assert statuses(results) == [200] * THREADS
    assert ledger(committing_app, "receipt") == {
        "recurring gifts": 1, "donations": 1, "emails": 1, "all emails": 1, "events": THREADS}
    with committing_app.app_context():
        recurring = db.session.scalars(select(RecurringDonation)).one()
        assert (recurring.status, recurring.attempt_id) == (RecurringStatus.ACTIVE, gift.attempt.id)


def test_twenty_events_about_one_declined_attempt_at_once_send_one_dunning_email(postgres, committing_app):
    gift = committed_gift(committing_app, checkout_delivered=True)
    declined = gift.invoice(invoice_id=new_id("in"), paid=False, billing_reason="subscription_cycle",
                            created=MONTHS[1], period_start=MONTHS[1], period_end=MONTHS[2])
    events = [event("invoice.payment_failed", declined, created=MONTHS[1]) for _ in range(THREADS)]

    results = deliver_concurrently(committing_app, events)

    assert statuses(results) == [200] * THREADS
    assert ledger(committing_app, "payment_failed") == {
        "recurring gifts": 1, "donations": 0, "emails": 1, "all emails": 1, "events": THREADS + 3}
    with committing_app.app_context():
        assert db.session.scalars(select(RecurringDonation)).one().status is RecurringStatus.PAST_DUE
        assert db.session.scalars(select(OutboxEmail)).one().dedupe_key == f"payment_failed:{declined['id']}:1"
