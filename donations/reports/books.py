"""The accountant's books: the ``ledger`` journal and the ``payouts`` summary, as export kinds.

The ledger is a journal of every movement in the Stripe balance (gift, fee, refund, dispute, dispute fee,
payout, and anything else Stripe booked), two rows each, a debit and a credit, in a layout that
QuickBooks Online's journal import and Xero's manual journal import map column by column: date, journal
number, account, description, debit, credit, currency, reference. The Stripe balance is a clearing
account: for each payout its rows net to zero against the bank, which is how the books reconcile.
"""
from __future__ import annotations

from typing import Iterator

from flask import current_app
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased

from .replica import reads
from ..ledger.models import Dispute, Donation, LedgerLine, LineKind, Payout
from ..money import Money
from .registry import ExportKind, ExportParams, register

LEDGER_COLUMNS = ["date", "journal", "account", "description", "debit", "credit", "currency", "reference",
                  "kind", "payout_id", "donation_id", "note"]
PAYOUT_COLUMNS = ["payout_id", "created", "arrival_date", "booked_on", "status", "currency", "gross", "fees",
                  "refunds", "disputes", "other", "net", "bank_amount", "difference", "lines", "error"]

#: The account each kind of line moves money to or from, against the Stripe balance.
COUNTER_ACCOUNT = {
    LineKind.GIFT: "donations", LineKind.FEE: "fees", LineKind.DISPUTE_FEE: "fees", LineKind.REFUND: "refunds",
    LineKind.DISPUTE: "disputes", LineKind.DISPUTE_REVERSAL: "disputes", LineKind.PAYOUT: "bank",
    LineKind.OTHER: "other",
}


def _ledger_query(params: ExportParams, currency: str | None = None):
    line_payout = aliased(Payout)
    query = (
        select(LedgerLine, line_payout.stripe_payout_id, Donation.receipt_number, Donation.amount,
               Donation.currency, Dispute.stripe_dispute_id)
        .outerjoin(line_payout, LedgerLine.payout_id == line_payout.id)
        .outerjoin(Donation, LedgerLine.donation_id == Donation.id)
        .outerjoin(Dispute, LedgerLine.dispute_id == Dispute.id)
    )
    if currency:
        query = query.where(LedgerLine.currency == currency)
    if params.payout_id:
        return query.where(line_payout.stripe_payout_id == params.payout_id)
    return query.where(LedgerLine.booked_on >= params.start, LedgerLine.booked_on <= params.end)


def _describe(line: LedgerLine, receipt: str | None, gift: Money | None, dispute: str | None) -> str:
    about = f"gift {receipt}" if receipt else (f"donation {line.donation_id}" if line.donation_id else "")
    if gift is not None and gift.currency != line.currency and line.kind is LineKind.GIFT:
        about += f" ({gift})"
    match line.kind:
        case LineKind.GIFT:
            return about[:1].upper() + about[1:]
        case LineKind.FEE:
            return f"Stripe fee, {about}" if about else "Stripe fee"
        case LineKind.REFUND:
            return f"Refund, {about}"
        case LineKind.DISPUTE:
            return f"Chargeback {dispute or line.stripe_source_id}, {about}"
        case LineKind.DISPUTE_FEE:
            return f"Chargeback fee {dispute or line.stripe_source_id}"
        case LineKind.DISPUTE_REVERSAL:
            return f"Chargeback won {dispute or line.stripe_source_id}, {about}"
        case LineKind.PAYOUT:
            if line.amount > 0:
                return f"Payout {line.stripe_source_id} failed: back in the Stripe balance"
            return f"Payout {line.stripe_source_id} to the bank"
    return f"Stripe balance transaction {line.stripe_balance_transaction_id}"


def ledger_rows(params: ExportParams, currency: str | None = None) -> Iterator[list]:
    """Two rows per line: the debit, then the credit, under one journal number."""
    accounts = current_app.config["LEDGER_ACCOUNTS"]
    stripe = accounts["stripe"]
    for line, payout_id, receipt, gift_amount, gift_currency, dispute in reads().execute(
            _ledger_query(params, currency).order_by(LedgerLine.booked_on, LedgerLine.id)
            .execution_options(yield_per=1000)):
        gift = Money(gift_amount, gift_currency) if gift_amount is not None else None
        counter = accounts[COUNTER_ACCOUNT[line.kind]]
        debit, credit = (stripe, counter) if line.amount > 0 else (counter, stripe)
        money = Money(abs(line.amount), line.currency)
        common = [_describe(line, receipt, gift, dispute)]
        tail = [line.currency, line.stripe_balance_transaction_id, line.kind.value, payout_id,
                line.donation_id, line.note]
        journal = f"L{line.id}"
        yield [line.booked_on, journal, debit, *common, money, None, *tail]
        yield [line.booked_on, journal, credit, *common, None, money, *tail]
        reads().expunge(line)


def ledger_count(params: ExportParams, currency: str | None = None) -> int:
    return 2 * reads().scalar(select(func.count()).select_from(_ledger_query(params, currency).subquery()))


# -- the same journal in the import templates of Xero and QuickBooks Online ----------------------------
# Both import journals in the company's own currency only, so these hold the lines in BOOKS_CURRENCY;
# lines in another balance currency are in the generic ledger.

XERO_COLUMNS = ["*Narration", "*Date", "Description", "*AccountCode", "*TaxRate", "*Amount"]
QUICKBOOKS_COLUMNS = ["JournalNo", "JournalDate", "AccountName", "Debits", "Credits", "Description"]


def _code_and_name(account: str) -> tuple[str, str]:
    """``1210 Stripe balance`` -> (``1210``, ``Stripe balance``): Xero wants the code, QuickBooks the name."""
    code, _, name = account.partition(" ")
    return (code, name.strip()) if code.isdigit() and name.strip() else (account, account)


def _base_rows(params: ExportParams) -> Iterator[list]:
    return ledger_rows(params, current_app.config["BOOKS_CURRENCY"])


def xero_rows(params: ExportParams) -> Iterator[list]:
    """Xero's manual journal template: rows with the same narration and date are one journal; a positive
    amount is a debit, a negative one a credit.
    https://central.xero.com/s/article/Add-import-and-post-manual-journals"""
    tax = current_app.config["XERO_TAX_RATE"]
    for day, journal, account, description, debit, credit, *_ in _base_rows(params):
        amount = debit if debit is not None else Money(-credit.amount, credit.currency)
        yield [f"{journal} {description}", day.strftime("%d/%m/%Y"), description, _code_and_name(account)[0],
               tax, amount]


def quickbooks_rows(params: ExportParams) -> Iterator[list]:
    """QuickBooks Online's journal entry import: rows with one JournalNo are one entry; accounts by name."""
    for day, journal, account, description, debit, credit, *_ in _base_rows(params):
        yield [journal, day.strftime("%m/%d/%Y"), _code_and_name(account)[1], debit, credit, description]


def base_ledger_count(params: ExportParams) -> int:
    return ledger_count(params, current_app.config["BOOKS_CURRENCY"])


def _payouts_query(params: ExportParams):
    theirs = and_(LedgerLine.payout_id == Payout.id,
                  func.coalesce(LedgerLine.stripe_source_id, "") != Payout.stripe_payout_id)

    def total(*kinds: LineKind):
        return func.coalesce(func.sum(case((LedgerLine.kind.in_(kinds), LedgerLine.amount), else_=0)), 0)

    query = (
        select(Payout, total(LineKind.GIFT), total(LineKind.FEE, LineKind.DISPUTE_FEE), total(LineKind.REFUND),
               total(LineKind.DISPUTE, LineKind.DISPUTE_REVERSAL), total(LineKind.OTHER, LineKind.PAYOUT))
        .outerjoin(LedgerLine, theirs)
        .group_by(Payout.id)
    )
    if params.payout_id:
        return query.where(Payout.stripe_payout_id == params.payout_id)
    return query.where(*_booked_in(params))


def _booked_in(params: ExportParams):
    """Payouts by the day they are in the books: their arrival, or the first open day after a closed period."""
    return Payout.booked_on >= params.start, Payout.booked_on <= params.end


def payout_rows(params: ExportParams) -> Iterator[list]:
    """One row per payout: what its lines add up to, kind by kind, beside what reached the bank. The
    difference is empty until Stripe's lines are fetched, and never hidden when they do not add up."""
    for payout, gross, fees, refunds, disputes, other in reads().execute(
            _payouts_query(params).order_by(Payout.arrival_date, Payout.id)):
        currency = payout.currency
        fetched = payout.lines_total is not None

        def money(amount):
            return Money(int(amount), currency) if fetched else None

        yield [payout.stripe_payout_id, payout.created, payout.arrival_date, payout.booked_on, payout.status,
               currency,
               money(gross), money(fees), money(refunds), money(disputes), money(other),
               money(payout.lines_total or 0), Money(payout.bank_amount, currency),
               money(payout.difference or 0), payout.lines_count, payout.reconcile_error or payout.failure_message]


def payout_count(params: ExportParams) -> int:
    query = select(func.count()).select_from(Payout)
    if params.payout_id:
        return reads().scalar(query.where(Payout.stripe_payout_id == params.payout_id))
    return reads().scalar(query.where(*_booked_in(params)))


register(ExportKind(
    name="ledger", title="Ledger",
    description="A journal of every movement in the Stripe balance (gifts, fees, refunds, disputes, payouts), "
                "debit and credit, for QuickBooks or Xero.",
    columns=LEDGER_COLUMNS, count=ledger_count, rows=ledger_rows, by_payout=True))
register(ExportKind(
    name="ledger-xero", title="Ledger for Xero",
    description="The ledger in Xero's manual journal template (account codes, signed amounts, dd/mm/yyyy), "
                "lines in BOOKS_CURRENCY.",
    columns=XERO_COLUMNS, count=base_ledger_count, rows=xero_rows, sheet_column=None, by_payout=True))
register(ExportKind(
    name="ledger-quickbooks", title="Ledger for QuickBooks",
    description="The ledger in QuickBooks Online's journal entry import (account names, debits and credits, "
                "mm/dd/yyyy), lines in BOOKS_CURRENCY.",
    columns=QUICKBOOKS_COLUMNS, count=base_ledger_count, rows=quickbooks_rows, sheet_column=None,
    by_payout=True))
register(ExportKind(
    name="payouts", title="Payouts",
    description="One row per payout: gross, fees, refunds, disputes and net of its lines beside the bank "
                "amount, and any difference.",
    columns=PAYOUT_COLUMNS, count=payout_count, rows=payout_rows, by_payout=True))
