"""The ledger's business logic: turn what Stripe tells us into supporters, donations and receipts."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from ..checkout.models import AttemptStatus, CheckoutAttempt
from ..db import insert_ignore
from ..extensions import db
from ..mail import emails
from .models import Donation, DonationStatus, ReceiptSequence, Supporter

log = logging.getLogger(__name__)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get_or_create_supporter(email: str, name: str | None = None) -> Supporter:
    """The supporter for this address, created on first use; safe when two requests race."""
    email = normalise_email(email)
    insert_ignore(db.session, Supporter, {"email": email, "name": name}, ["email"])
    supporter = db.session.scalars(select(Supporter).where(Supporter.email == email)).one()
    if name and not supporter.name:
        supporter.name = name
    return supporter


def next_receipt_number(year: int) -> str:
    """Take the next receipt number of ``year``.

    The counter row stays locked until the transaction ends, and rolls back with it,
    so numbers are unique and without gaps.
    """
    insert_ignore(db.session, ReceiptSequence, {"year": year, "last_number": 0}, ["year"])
    number = db.session.execute(
        update(ReceiptSequence)
        .where(ReceiptSequence.year == year)
        .values(last_number=ReceiptSequence.last_number + 1)
        .returning(ReceiptSequence.last_number)
    ).scalar_one()
    return f"{year}-{number:06d}"


def record_checkout_session(session: dict[str, Any], *, paid: bool, at: datetime, failed: bool = False) -> str:
    """Book a one-off Checkout Session: create its donation, and move it to succeeded or failed.

    Idempotent and order-independent: the donation is found by the session id, a status
    never moves backwards to pending, and the receipt is queued once, on the move to succeeded.
    """
    metadata = session.get("metadata") or {}
    attempt_id = metadata.get("attempt_id")
    if not attempt_id:
        return "ignored: not ours (no attempt_id in metadata)"
    if session.get("mode") != "payment":
        return f"ignored: mode {session.get('mode')} not handled"
    # Locking the attempt serialises every event about this gift (PostgreSQL; SQLite serialises writers anyway).
    attempt = db.session.get(CheckoutAttempt, attempt_id, with_for_update=True)
    if attempt is None:
        return "ignored: not ours (unknown attempt)"

    donation = db.session.scalars(
        select(Donation).where(Donation.stripe_checkout_session_id == session["id"])
    ).one_or_none()
    if donation is None:
        details = session.get("customer_details") or {}
        email = attempt.email or details.get("email") or session.get("customer_email")
        supporter = get_or_create_supporter(email, attempt.name or details.get("name"))
        amount = session.get("amount_total") or attempt.amount
        currency = (session.get("currency") or attempt.currency).upper()
        if (amount, currency) != (attempt.amount, attempt.currency):
            log.warning("session %s charged %s %s, attempt %s asked %s %s", session["id"], amount, currency,
                        attempt.id, attempt.amount, attempt.currency)
        donation = Donation(
            supporter=supporter,
            campaign_id=attempt.campaign_id,
            attempt_id=attempt.id,
            amount=amount,
            currency=currency,
            covered_fee=attempt.covered_fee if amount == attempt.amount else 0,
            frequency=attempt.frequency,
            status=DonationStatus.PENDING,
            article_url=attempt.article_url,
            stripe_checkout_session_id=session["id"],
        )
        db.session.add(donation)
    if session.get("payment_intent") and not donation.stripe_payment_intent_id:
        donation.stripe_payment_intent_id = session["payment_intent"]
    attempt.status = AttemptStatus.COMPLETED
    db.session.flush()

    if failed:
        donation.transition(DonationStatus.FAILED)
        return f"donation {donation.id} failed"
    if paid and donation.status == DonationStatus.PENDING:
        mark_succeeded(donation, at)
        return f"donation {donation.id} succeeded"
    return f"donation {donation.id} {donation.status.value}"


def mark_succeeded(donation: Donation, at: datetime) -> None:
    """Move a donation to succeeded, number its receipt and queue the receipt email, all in this transaction."""
    donation.transition(DonationStatus.SUCCEEDED)
    donation.paid_at = at
    donation.receipt_number = next_receipt_number(at.year)
    db.session.flush()
    emails.queue_receipt(donation)
