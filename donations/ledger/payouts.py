"""The books: Stripe's balance transactions as ledger lines, the payouts they reached the bank in,
and closed periods.

Every line comes from one Stripe balance transaction (https://docs.stripe.com/api/balance_transactions/object),
keyed by its id, so the fee job, a dispute event and a payout's listing can all report the same
transaction without booking it twice. A payout reconciles when its lines, fetched with
``balance_transactions?payout=…``, add up to the amount that reached the bank.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from ..db import insert_ignore, now_utc
from ..extensions import db
from ..payments.gateway import GatewayError, get_gateway
from .models import ClosedPeriod, Dispute, Donation, LedgerLine, LineKind, Payout, Refund

log = logging.getLogger(__name__)

PAYOUT_TYPES = ("payout", "payout_cancel", "payout_failure", "payout_minimum_balance_hold",
                "payout_minimum_balance_release")


class BooksError(ValueError):
    """A request about the books that cannot be done; the message says why."""


# -- closed periods ------------------------------------------------------------------------------------

def closed_through() -> date | None:
    """The last day of the closed books, or None while nothing is closed."""
    return db.session.scalar(select(func.max(ClosedPeriod.closed_through)))


def close_books(through: date, by: str) -> ClosedPeriod:
    """Close the books through ``through``: lines that arrive later for a day up to it are booked on
    the next open day. Closing only moves forward, so a filed period is never reopened by mistake."""
    current = closed_through()
    if current is not None and through <= current:
        raise BooksError(f"The books are already closed through {current.isoformat()}.")
    if through >= now_utc().date():
        raise BooksError("Only days that have ended can be closed.")
    period = ClosedPeriod(closed_through=through, closed_by=by)
    db.session.add(period)
    db.session.flush()
    return period


def booking_day(day: date) -> tuple[date, str | None]:
    """The day a movement of ``day`` goes into the books, and a note when that is not ``day`` itself."""
    closed = closed_through()
    if closed is not None and day <= closed:
        return closed + timedelta(days=1), (f"occurred {day.isoformat()}, in the period closed "
                                            f"through {closed.isoformat()}")
    return day, None


# -- lines -------------------------------------------------------------------------------------------

def _kinds(balance: dict[str, Any]) -> tuple[LineKind, LineKind]:
    """The kinds of a balance transaction's amount and of its fee."""
    kind, category = balance.get("type"), balance.get("reporting_category")
    if kind in ("charge", "payment"):
        return LineKind.GIFT, LineKind.FEE
    if kind in ("refund", "payment_refund"):
        return LineKind.REFUND, LineKind.FEE
    if category == "dispute_reversal":
        return LineKind.DISPUTE_REVERSAL, LineKind.DISPUTE_FEE
    if category == "dispute" or kind == "adjustment" and str(_id(balance.get("source"))).startswith("dp_"):
        return LineKind.DISPUTE, LineKind.DISPUTE_FEE
    if kind in PAYOUT_TYPES:
        return LineKind.PAYOUT, LineKind.FEE
    return LineKind.OTHER, LineKind.FEE


def _id(value: Any) -> str | None:
    """An id that may arrive expanded into its object."""
    return value.get("id") if isinstance(value, dict) else value


def book_balance(balance: dict[str, Any], *, donation_id: int | None = None, dispute_id: int | None = None,
                 payout: Payout | None = None) -> None:
    """Put one balance transaction in the books: a line for its amount and one for its fee, each made
    once however often this is called; links that were missing are added."""
    occurred = datetime.fromtimestamp(balance["created"], timezone.utc)
    amount_kind, fee_kind = _kinds(balance)
    own_payout = payout is not None and _id(balance.get("source")) == payout.stripe_payout_id
    # Money leaves for the bank on the payout's arrival date: the day the bank statement shows it.
    day = payout.arrival_date if own_payout and balance.get("type") == "payout" else occurred.date()
    booked_on, note = booking_day(day)
    currency = balance["currency"].upper()
    keys = []
    for part, kind, amount in (("amount", amount_kind, int(balance["amount"])),
                               ("fee", fee_kind, -int(balance.get("fee") or 0))):
        if amount == 0:
            continue
        key = f"{balance['id']}:{part}"
        keys.append(key)
        insert_ignore(db.session, LedgerLine, {
            "key": key, "kind": kind, "amount": amount, "currency": currency, "occurred_at": occurred,
            "booked_on": booked_on, "note": note, "stripe_balance_transaction_id": balance["id"],
            "stripe_source_id": _id(balance.get("source")), "donation_id": donation_id,
            "dispute_id": dispute_id, "created_at": now_utc(),
        }, ["key"])
    links = {"donation_id": donation_id, "dispute_id": dispute_id, "payout_id": payout.id if payout else None}
    for column, value in links.items():
        if value is not None and keys:
            field = getattr(LedgerLine, column)
            db.session.execute(update(LedgerLine).where(LedgerLine.key.in_(keys), field.is_(None))
                               .values({column: value}).execution_options(synchronize_session=False))


BALANCE_FIELDS = {"id": str, "amount": int, "fee": int, "net": int, "currency": str, "created": int}


def is_balance(value: Any) -> bool:
    """A balance transaction with every field the books read (an expanded object, not just its id)."""
    return isinstance(value, dict) and all(
        isinstance(value.get(name), kind) and not isinstance(value.get(name), bool)
        for name, kind in BALANCE_FIELDS.items())


def apply_charge_balance(donation: Donation, balance: dict[str, Any], payout: Payout | None = None) -> None:
    """A donation's charge settled: its fee, net, settlement currency and rate, and its lines in the books."""
    if donation.fee is None:
        donation.fee, donation.net = int(balance["fee"]), int(balance["net"])
        donation.settlement_currency = balance["currency"].upper()
        rate = balance.get("exchange_rate")
        donation.exchange_rate = None if rate is None else str(Decimal(str(rate)))
    book_balance(balance, donation_id=donation.id, payout=payout)


def record_charge_updated(charge: dict[str, Any], at: datetime) -> str:
    """Stripe attached the balance transaction to a charge. When the event carries it expanded, the fee
    is booked now; otherwise the fee job fetches it (an API call does not belong on the webhook's path)."""
    from .operations import _donation_for_payment

    donation = _donation_for_payment(charge.get("payment_intent"))
    if donation is None:
        return "ignored: not ours (unknown payment)"
    balance = charge.get("balance_transaction")
    if not is_balance(balance):
        return f"donation {donation.id}: fee left to the fee job"
    apply_charge_balance(donation, balance)
    return f"donation {donation.id}: fee {balance['fee']} {balance['currency'].upper()} booked"


def book_dispute_balances(dispute: dict[str, Any], row: Dispute) -> None:
    """A dispute's own balance transactions (the withdrawal and its fee, a reversal when won), which
    Stripe includes in the dispute object."""
    for balance in dispute.get("balance_transactions") or []:
        if is_balance(balance):
            book_balance(balance, donation_id=row.donation_id, dispute_id=row.id)


# -- payouts -------------------------------------------------------------------------------------------

PAYOUT_FIELDS = {"id": str, "amount": int, "currency": str, "status": str, "created": int, "arrival_date": int}


def record_payout(obj: dict[str, Any], at: datetime) -> str:
    """A payout was paid, failed or changed: keep it, with its status as of the newest event.

    Its lines are fetched by the payout job, not here: a payout may list thousands of transactions.
    """
    missing = [name for name, kind in PAYOUT_FIELDS.items()
               if not isinstance(obj.get(name), kind) or isinstance(obj.get(name), bool)]
    if missing:
        return f"ignored: not a payout object (no valid {', '.join(missing)})"
    arrival = datetime.fromtimestamp(obj["arrival_date"], timezone.utc).date()
    payout = db.session.scalars(select(Payout).where(Payout.stripe_payout_id == obj["id"])
                                .with_for_update()).one_or_none()
    if payout is None:
        insert_ignore(db.session, Payout, {
            "stripe_payout_id": obj["id"], "amount": obj["amount"], "currency": obj["currency"].upper(),
            "status": obj["status"], "created": datetime.fromtimestamp(obj["created"], timezone.utc),
            "arrival_date": arrival, "booked_on": booking_day(arrival)[0], "reconcile_tries": 0,
        }, ["stripe_payout_id"])
        payout = db.session.scalars(select(Payout).where(Payout.stripe_payout_id == obj["id"])
                                    .with_for_update()).one()
    if payout.status_at is not None and at < payout.status_at:
        return f"payout {payout.stripe_payout_id}: older than what is booked"
    if payout.status in ("failed", "canceled") and obj["status"] != payout.status:
        return f"payout {payout.stripe_payout_id}: already {payout.status}"  # failed is final at Stripe
    payout.status, payout.status_at = obj["status"], at
    payout.amount, payout.currency = obj["amount"], obj["currency"].upper()
    if arrival != payout.arrival_date:  # Stripe moved the day: book it anew, unless that day is closed
        payout.arrival_date, payout.booked_on = arrival, booking_day(arrival)[0]
    payout.failure_message = obj.get("failure_message")
    if isinstance(_id(obj.get("balance_transaction")), str):
        payout.stripe_balance_transaction_id = _id(obj["balance_transaction"])
    failure = _id(obj.get("failure_balance_transaction"))
    if payout.status == "failed" and isinstance(failure, str):
        # The money came back to the balance; a later payout carries it (and lists this line) again.
        book_balance({"id": failure, "type": "payout_failure", "amount": obj["amount"], "fee": 0,
                      "currency": obj["currency"], "created": int(at.timestamp()), "source": obj["id"]})
    if payout.status in ("paid", "failed"):
        payout.reconciled_at = None  # (again) for the payout job
    return f"payout {payout.stripe_payout_id} {payout.status}"


def reconcile_payout(payout: Payout) -> int | None:
    """Fetch a payout's balance transactions from Stripe, put each in the books linked to the payout
    (and to its donation or dispute), and sum them; returns the difference to the bank amount."""
    listed = get_gateway().payout_balance_transactions(payout.stripe_payout_id)
    own_line = False
    for balance in listed:
        if not is_balance(balance):  # the payout stays unreconciled, with this error shown, rather than half-read
            raise BooksError(f"Stripe listed a transaction the books cannot read: {str(balance)[:200]}")
        source = balance.get("source") if isinstance(balance.get("source"), dict) else {}
        donation = _donation_by_intent(_id(source.get("payment_intent")))
        dispute = None
        if source.get("object") == "dispute":
            dispute = db.session.scalars(select(Dispute).where(Dispute.stripe_dispute_id == source["id"])
                                         ).one_or_none()
        if donation is not None and balance.get("type") in ("charge", "payment"):
            apply_charge_balance(donation, balance, payout)
        elif (balance.get("type") in ("payout_failure", "payout_cancel")
              and _id(balance.get("source")) == payout.stripe_payout_id):
            book_balance(balance)  # money back from this payout: the next payout carries it, not this one
        else:
            book_balance(balance, donation_id=donation.id if donation else None,
                         dispute_id=dispute.id if dispute else None, payout=payout)
        own_line = own_line or _id(balance.get("source")) == payout.stripe_payout_id
    if not own_line and payout.status == "paid":
        log.warning("payout %s: Stripe did not list the payout itself; booked from the payout", payout.id)
        book_balance({"id": payout.stripe_balance_transaction_id or f"{payout.stripe_payout_id}-bank",
                      "type": "payout", "amount": -payout.amount,
                      "fee": 0, "currency": payout.currency, "created": int(payout.created.timestamp()),
                      "source": payout.stripe_payout_id}, payout=payout)
    theirs = (LedgerLine.payout_id == payout.id,
              func.coalesce(LedgerLine.stripe_source_id, "") != payout.stripe_payout_id)
    total, count = db.session.execute(select(func.coalesce(func.sum(LedgerLine.amount), 0), func.count())
                                      .where(*theirs)).one()
    payout.lines_total, payout.lines_count, payout.reconciled_at = int(total), len(listed), now_utc()
    payout.reconcile_error = None
    if payout.difference:
        log.error("payout %s: lines add up to %s, the bank got %s %s", payout.stripe_payout_id, total,
                  payout.amount, payout.currency)
    return payout.difference


def _donation_by_intent(intent: str | None) -> Donation | None:
    if not intent:
        return None
    return db.session.scalars(select(Donation).where(Donation.stripe_payment_intent_id == intent)).one_or_none()


def reconcile_payouts(limit: int = 20) -> dict[str, int]:
    """Fetch the lines of every paid or failed payout not yet reconciled. One payout's failure (Stripe
    unreachable) never stops the others; it is tried again on the next run."""
    counts = {"reconciled": 0, "mismatched": 0, "failed": 0}
    # Fewest failed tries first: a payout Stripe will not list (a manual one) never holds up the others.
    ids = db.session.scalars(select(Payout.id).where(Payout.reconciled_at.is_(None),
                                                     Payout.status.in_(("paid", "failed")))
                             .order_by(Payout.reconcile_tries, Payout.created).limit(limit)).all()
    for payout_id in ids:
        try:
            difference = reconcile_payout(db.session.get(Payout, payout_id))
            db.session.commit()
        except Exception as exc:  # Stripe unreachable, or lines we cannot read: this payout only, tried again
            db.session.rollback()
            if isinstance(exc, GatewayError):
                log.warning("payout %s not reconciled: %s", payout_id, exc)
            else:
                log.exception("payout %s not reconciled", payout_id)
            db.session.execute(update(Payout).where(Payout.id == payout_id).values(
                reconcile_tries=Payout.reconcile_tries + 1, reconcile_error=str(exc.__cause__ or exc)[:500]))
            db.session.commit()
            counts["failed"] += 1
            continue
        counts["mismatched" if difference else "reconciled"] += 1
    return counts


def fetch_refund_balances(limit: int = 200) -> dict[str, int]:
    """Book the balance transactions of refunds that have no lines yet (Stripe's ``charge.refunded``
    carries only the running total, not the refund's balance transaction)."""
    counts = {"refunds": 0, "failed": 0}
    lines = (select(func.count()).where(LedgerLine.donation_id == Donation.id, LedgerLine.kind == LineKind.REFUND)
             .scalar_subquery())
    refunds = (select(func.count()).where(Refund.donation_id == Donation.id).scalar_subquery())
    rows = db.session.scalars(select(Donation).where(Donation.amount_refunded > 0, lines < refunds,
                                                     Donation.stripe_payment_intent_id.is_not(None))
                              .order_by(Donation.id.desc()).limit(limit)).all()
    gateway = get_gateway()
    for donation_id, intent_id in [(d.id, d.stripe_payment_intent_id) for d in rows]:
        try:
            found = gateway.payment_refunds(intent_id)
            booked = 0
            for refund in found:
                if is_balance(refund.get("balance_transaction")):
                    book_balance(refund["balance_transaction"], donation_id=donation_id)
                    booked += 1
            db.session.commit()
        except GatewayError as exc:
            db.session.rollback()
            log.warning("refunds of donation %s not fetched: %s", donation_id, exc)
            counts["failed"] += 1
            continue
        except Exception:  # one gift's refunds that cannot be booked must not hold up the others'
            db.session.rollback()
            log.exception("refunds of donation %s not booked", donation_id)
            counts["failed"] += 1
            continue
        counts["refunds"] += booked
    return counts
