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


def fiscal_year_days(year: int, start_month: int) -> tuple[date, date]:
    """First and last day of the fiscal year that starts in ``start_month`` of ``year`` (April: Apr 1 – Mar 31)."""
    first = date(year, start_month, 1)
    following = date(year + 1, start_month, 1)
    return first, following - timedelta(days=1)


def _text(value: str | None) -> str:
    """Text a reader typed, defused for spreadsheets: a leading = + - @ would make a formula."""
    value = value or ""
    return "'" + value if value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def _major(amount: int | None, currency: str) -> str:
    return "" if amount is None else Money(amount, currency).major_str()


def _donations(start: date, end: date):
    """Donations paid (or, if not paid, created) from ``start`` to ``end`` inclusive, UTC days, oldest first,
    with the supporter's email and name and the campaign's slug; streamed in batches."""
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
        yield donation, email, name, slug
        db.session.expunge(donation)


def donation_rows(start: date, end: date) -> Iterator[list[str]]:
    """The donations export as text cells, the same for CSV and every other text format."""
    for donation, email, name, slug in _donations(start, end):
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


def write_donations_csv(out: IO[str], start: date, end: date) -> int:
    """Write the donations CSV to ``out``; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DONATION_COLUMNS)
    count = 0
    for row in donation_rows(start, end):
        writer.writerow(row)
        count += 1
    return count


def write_donations_xlsx(path: str | IO[bytes], start: date, end: date) -> int:
    """Write the donations as XLSX: one sheet per currency (amounts never mix), numbers as numbers,
    times as dates (UTC), text defused like the CSV's. openpyxl's write-only mode keeps memory flat."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheets: dict[str, object] = {}

    def sheet_for(currency: str):
        if currency not in sheets:
            sheets[currency] = book.create_sheet(title=currency)
            sheets[currency].append(DONATION_COLUMNS)
        return sheets[currency]

    def money(sheet, amount: int | None, currency: str):
        if amount is None:
            return None
        cell = WriteOnlyCell(sheet, value=Money(amount, currency).as_decimal())
        exponent = Money(amount, currency).exponent
        cell.number_format = "#,##0" + ("." + "0" * exponent if exponent else "")
        return cell

    count = 0
    for donation, email, name, slug in _donations(start, end):
        currency, settled = donation.currency, donation.settlement_currency or donation.currency
        sheet = sheet_for(currency)
        paid = None
        if donation.paid_at:
            paid = WriteOnlyCell(sheet, value=donation.paid_at.astimezone(timezone.utc).replace(tzinfo=None))
            paid.number_format = "yyyy-mm-dd hh:mm:ss"
        sheet.append([
            donation.id, paid, _text(email), _text(name), money(sheet, donation.amount, currency), currency,
            money(sheet, donation.fee, settled), money(sheet, donation.net, settled), donation.frequency.value,
            donation.status.value, money(sheet, donation.amount_refunded, currency), slug or "",
            _text(donation.article_url), donation.stripe_payment_intent_id or "", donation.stripe_invoice_id or "",
            donation.stripe_subscription_id or "", donation.receipt_number or "",
        ])
        count += 1
    if not sheets:
        sheet_for("Donations")
    book.save(path)
    return count
