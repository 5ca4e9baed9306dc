"""Scheduled work of the ledger."""
from __future__ import annotations

import logging
from sqlalchemy import exists, select

from ..extensions import db
from ..payments.gateway import GatewayError, get_gateway
from .models import Donation, DonationStatus, LedgerLine, LineKind
from .payouts import apply_charge_balance, fetch_refund_balances, is_balance, reconcile_payouts

log = logging.getLogger(__name__)

#: Statuses of donations whose money was received, and so has a fee.
PAID = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED,
        DonationStatus.DISPUTED)


def fill_missing_fees(limit: int = 500) -> dict[str, int]:
    """Give paid donations their Stripe fee and net from the charge's balance transaction, and put
    the gift and its fee in the books.

    Stripe often settles after the first events arrive, so this runs on a schedule rather than on
    the webhook's path. Newest first, so that a payment Stripe cannot find never holds up new ones;
    one donation's failure never stops the others, and it is tried on the next run.
    """
    gateway = get_gateway()
    counts = {"filled": 0, "not_settled": 0, "failed": 0}
    booked = exists().where(LedgerLine.donation_id == Donation.id, LedgerLine.kind == LineKind.GIFT)
    rows = db.session.scalars(
        select(Donation).where(~booked, Donation.status.in_(PAID), Donation.stripe_payment_intent_id.is_not(None))
        .order_by(Donation.id.desc()).limit(limit))
    for donation in list(rows):
        donation_id = donation.id
        try:
            balance = gateway.payment_balance(donation.stripe_payment_intent_id)
            if balance is None:  # Stripe has not settled the charge yet
                counts["not_settled"] += 1
                continue
            if not is_balance(balance):
                log.error("fee of donation %s not booked: Stripe's balance transaction lacks fields: %.200r",
                          donation_id, balance)
                counts["failed"] += 1
                continue
            apply_charge_balance(donation, balance)
            db.session.commit()
        except GatewayError as exc:
            db.session.rollback()
            log.warning("fee of donation %s not fetched: %s", donation_id, exc)
            counts["failed"] += 1
            continue
        except Exception:  # a balance we cannot book (an odd shape, a constraint): this gift only, logged
            db.session.rollback()
            log.exception("fee of donation %s not booked", donation_id)
            counts["failed"] += 1
            continue
        counts["filled"] += 1
    db.session.commit()
    return counts


def settle_books() -> dict[str, int]:
    """The books job: fees of new gifts, balance lines of refunds, and the lines of new payouts."""
    return {**fill_missing_fees(), **fetch_refund_balances(), **reconcile_payouts()}
