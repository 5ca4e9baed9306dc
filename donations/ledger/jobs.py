"""Scheduled work of the ledger."""
from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from ..extensions import db
from ..payments.gateway import GatewayError, get_gateway
from .models import Donation, DonationStatus

log = logging.getLogger(__name__)

#: Statuses of donations whose money was received, and so has a fee.
PAID = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED,
        DonationStatus.DISPUTED)


def fill_missing_fees(limit: int = 200) -> dict[str, int]:
    """Give paid donations their Stripe fee and net from the charge's balance transaction.

    Stripe often settles after the first events arrive, so this runs on a schedule rather than on
    the webhook's path. One donation's failure never stops the others; it is tried on the next run.
    """
    gateway = get_gateway()
    counts = {"filled": 0, "not_settled": 0, "failed": 0}
    rows = db.session.scalars(
        select(Donation).where(Donation.fee.is_(None), Donation.status.in_(PAID),
                               Donation.stripe_payment_intent_id.is_not(None))
        .order_by(Donation.paid_at).limit(limit))
    for donation in list(rows):
        try:
            balance = gateway.payment_balance(donation.stripe_payment_intent_id)
        except GatewayError as exc:
            log.warning("fee of donation %s not fetched: %s", donation.id, exc)
            counts["failed"] += 1
            continue
        if balance is None:
            counts["not_settled"] += 1
            continue
        donation.fee, donation.net = int(balance["fee"]), int(balance["net"])
        donation.settlement_currency = balance["currency"].upper()
        rate = balance.get("exchange_rate")
        donation.exchange_rate = None if rate is None else str(Decimal(str(rate)))
        counts["filled"] += 1
        db.session.commit()
    db.session.commit()
    return counts
