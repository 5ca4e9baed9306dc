"""charge.dispute.*: a chargeback marks the donation disputed while open, and paid again when won, in any order."""
from __future__ import annotations


import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger.models import Dispute, Donation, DonationStatus
from tests.factories import checkout_session, event, make_attempt, post_event


def paid_donation(client) -> Donation:
    attempt = make_attempt()
    db.session.commit()
    post_event(client, event("checkout.session.completed", checkout_session(attempt)))
    return db.session.scalars(select(Donation).where(Donation.attempt_id == attempt.id)).one()


def dispute(donation: Donation, status: str, dispute_id: str = "dp_1") -> dict:
    return {"id": dispute_id, "object": "dispute", "amount": donation.amount, "currency": donation.currency.lower(),
            "charge": "ch_1", "payment_intent": donation.stripe_payment_intent_id, "reason": "fraudulent",
            "status": status, "created": 1_790_000_000}


@pytest.mark.parametrize("events,final_status,dispute_status", [
    ([("charge.dispute.created", "needs_response")], DonationStatus.DISPUTED, "needs_response"),
    ([("charge.dispute.created", "needs_response"), ("charge.dispute.closed", "won")],
     DonationStatus.SUCCEEDED, "won"),
    ([("charge.dispute.created", "needs_response"), ("charge.dispute.closed", "lost")],
     DonationStatus.DISPUTED, "lost"),
    ([("charge.dispute.closed", "won"), ("charge.dispute.created", "needs_response")],
     DonationStatus.SUCCEEDED, "won"),
    ([("charge.dispute.closed", "lost"), ("charge.dispute.created", "needs_response")],
     DonationStatus.DISPUTED, "lost"),
], ids=["opened", "won", "lost", "won-out-of-order", "lost-out-of-order"])
def test_dispute_outcome_is_the_same_in_any_order(app_ctx, client, events, final_status, dispute_status):
    donation = paid_donation(client)

    for event_type, status in events:
        assert post_event(client, event(event_type, dispute(donation, status))).status_code == 200

    db.session.refresh(donation)
    row = db.session.scalars(select(Dispute)).one()
    assert (donation.status, row.status, row.amount) == (final_status, dispute_status, donation.amount)
    assert (row.closed_at is not None) == (dispute_status in ("won", "lost"))


def test_repeated_dispute_events_keep_one_dispute(app_ctx, client):
    donation = paid_donation(client)
    evt = event("charge.dispute.created", dispute(donation, "needs_response"))

    for _ in range(3):
        post_event(client, evt)
    post_event(client, event("charge.dispute.created", dispute(donation, "needs_response")))

    assert db.session.scalar(select(func.count()).select_from(Dispute)) == 1


def test_dispute_on_a_payment_that_is_not_ours_is_ignored(app_ctx, client):
    other = {"id": "dp_x", "object": "dispute", "amount": 500, "currency": "eur", "payment_intent": "pi_other",
             "status": "needs_response", "created": 1_790_000_000}

    response = post_event(client, event("charge.dispute.created", other))

    assert response.get_json()["outcome"].startswith("ignored: not ours")
    assert db.session.scalar(select(func.count()).select_from(Dispute)) == 0
