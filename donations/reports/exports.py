"""Exports for the accountant: streamed row by row, so a million donations fit in little memory."""
from __future__ import annotations

import csv
from datetime import date, datetime, time, timedelta, timezone
from typing import IO, Iterator

from sqlalchemy import func, select

from ..campaigns.models import Campaign
from ..extensions import db
from ..ledger.models import Donation, Supporter
from ..money import Money

DONATION_COLUMNS = [
    "donation_id", "paid_at", "supporter_email", "supporter_name", "amount", "currency", "fee", "net",
    "frequency", "status", "amount_refunded", "campaign", "article_url", "stripe_payment_intent",
    "stripe_invoice", "stripe_subscription", "receipt_number",
]


def _text(value: str | None) -> str:
    """Text a reader typed, defused for spreadsheets: a leading = + - @ would make a formula."""
    value = value or ""
    return "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def _major(amount: int | None, currency: str) -> str:
    return "" if amount is None else Money(amount, currency).major_str()


def donation_rows(start: date, end: date) -> Iterator[list[str]]:
    """Donations paid (or, if not paid, created) from ``start`` to ``end`` inclusive, UTC days, oldest first."""
    since = datetime.combine(start, time.min, timezone.utc)
    until = datetime.combine(end + timedelta(days=1), time.min, timezone.utc)
    when = func.coalesce(Donation.paid_at, Donation.created_at)
    query = (
        select(Donation, Supporter.email, Supporter.name, Campaign.slug)
        .join(Supporter, Donation.supporter_id == Supporter.id)
        .outerjoin(Campaign, Donation.campaign_id == Campaign.id)
        .where(when >= since, when < until)
        .order_by(when, Donation.id)
        .execution_options(yield_per=1000)
    )
    for donation, email, name, slug in db.session.execute(query):
        currency = donation.currency
        yield [
            str(donation.id),
            donation.paid_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if donation.paid_at else "",
            _text(email),
            _text(name),
            _major(donation.amount, currency),
            currency,
            _major(donation.fee, donation.settlement_currency or currency),
            _major(donation.net, donation.settlement_currency or currency),
            donation.frequency.value,
            donation.status.value,
            _major(donation.amount_refunded, currency),
            slug or "",
            _text(donation.article_url),
            donation.stripe_payment_intent_id or "",
            donation.stripe_invoice_id or "",
            donation.stripe_subscription_id or "",
            donation.receipt_number or "",
        ]
        db.session.expunge(donation)


def write_donations_csv(out: IO[str], start: date, end: date) -> int:
    """Write the donations CSV to ``out``; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DONATION_COLUMNS)
    count = 0
    for row in donation_rows(start, end):
        writer.writerow(row)
        count += 1
    return count
