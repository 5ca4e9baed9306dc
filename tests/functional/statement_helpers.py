"""Shared helpers for the annual statement tests: gifts booked through the webhook on a chosen day,
refunds and chargebacks as Stripe reports them, and the text of a PDF."""
from __future__ import annotations

import io
from datetime import datetime, timezone

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select

from donations.extensions import db
from donations.ledger.models import Donation
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.staff_helpers import in_app


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def gift(client: FlaskClient, at: datetime, amount: int = 2500, currency: str = "EUR",
         email: str = "reader@example.com", name: str | None = "Ada Reader") -> int:
    """A one-off gift paid at ``at``, booked through Stripe's signed checkout.session.completed; its id."""
    with in_app(client.application):
        attempt = make_attempt(amount=amount, currency=currency, email=email, name=name)
        db.session.commit()
        session = checkout_session(attempt)
    response = post_event(client, event("checkout.session.completed", session, created=int(at.timestamp())))
    assert response.status_code == 200, response.get_data(as_text=True)
    with in_app(client.application):
        donation = db.session.scalars(select(Donation).where(
            Donation.stripe_checkout_session_id == session["id"])).one()
        assert donation.paid_at == at
        return donation.id


def refund(client: FlaskClient, donation_id: int, total_refunded: int) -> None:
    """Stripe's charge.refunded carrying the running total refunded."""
    with in_app(client.application):
        d = db.session.get(Donation, donation_id)
        charge = {"id": f"ch_{d.stripe_payment_intent_id}", "object": "charge", "amount": d.amount,
                  "currency": d.currency.lower(), "payment_intent": d.stripe_payment_intent_id,
                  "amount_refunded": total_refunded, "refunded": total_refunded == d.amount, "livemode": False}
    assert post_event(client, event("charge.refunded", charge)).status_code == 200


def chargeback(client: FlaskClient, donation_id: int, status: str) -> None:
    """Stripe's charge.dispute.created / closed for the whole donation."""
    with in_app(client.application):
        d = db.session.get(Donation, donation_id)
        dispute = {"id": f"dp_{donation_id}", "object": "dispute", "amount": d.amount,
                   "currency": d.currency.lower(), "charge": "ch_1", "payment_intent": d.stripe_payment_intent_id,
                   "reason": "fraudulent", "status": status, "created": 1_790_000_000}
    kind = "charge.dispute.closed" if status in ("won", "lost") else "charge.dispute.created"
    assert post_event(client, event(kind, dispute)).status_code == 200


def pdf_text(data: bytes) -> str:
    """Every page's text, as a reader copying it from the PDF would get it."""
    assert data.startswith(b"%PDF-"), data[:20]
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
