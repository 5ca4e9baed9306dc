"""The donations and supporters exports, registered in :mod:`donations.reports.registry` (which says how
an export kind is built and written). Rows are streamed, so a million donations fit in little memory."""
from __future__ import annotations

from datetime import timezone
from decimal import Decimal, InvalidOperation
from typing import Iterator

from sqlalchemy import BigInteger, Date, Numeric, String, and_, case, cast, exists, func, literal, null, or_, select, union

from ..campaigns.models import Campaign
from ..extensions import db
from ..ledger.models import Donation, LedgerLine, LineKind, Payout, RecurringDonation, RecurringStatus, Supporter
from ..money import Money, currency_exponent
from .registry import FORMULA_STARTS, ExportKind, ExportParams, register

DONATION_COLUMNS = [
    "donation_id", "paid_at", "supporter_email", "supporter_name", "amount", "currency", "fee", "net",
    "frequency", "status", "amount_refunded", "campaign", "article_url", "stripe_payment_intent",
    "stripe_invoice", "stripe_subscription", "receipt_number", "payout_id", "settlement_currency", "exchange_rate",
    "booked_on", "note",
]

# -- donations ---------------------------------------------------------------------------------------

_donation_time = func.coalesce(Donation.paid_at, Donation.created_at)


#: The Stripe payout (po_…) a donation's money left the balance with: the payout of its gift's ledger line.
_payout_of_gift = (
    select(Payout.stripe_payout_id).join(LedgerLine, LedgerLine.payout_id == Payout.id)
    .where(LedgerLine.donation_id == Donation.id, LedgerLine.kind == LineKind.GIFT)
    .limit(1).scalar_subquery()
)


def _donations_in(params: ExportParams):
    """By payout; or paid donations by the day they are in the books (a gift that reached us after its
    period was closed is in the first open day, so a filed month never changes), unpaid ones by creation."""
    if params.payout_id:
        return (exists().where(LedgerLine.donation_id == Donation.id, LedgerLine.kind == LineKind.GIFT,
                               LedgerLine.payout_id == Payout.id, Payout.stripe_payout_id == params.payout_id),)
    return (or_(and_(Donation.booked_on >= params.start, Donation.booked_on <= params.end),
                and_(Donation.booked_on.is_(None), Donation.created_at >= params.since,
                     Donation.created_at < params.until)),)


def count_donations(params: ExportParams) -> int:
    """How many donations were paid (or, if not paid, created) in the period."""
    return db.session.scalar(select(func.count()).select_from(Donation).where(*_donations_in(params)))


def _rate(text: str | None) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


def donation_cells(params: ExportParams) -> Iterator[list]:
    """Donations paid (or, if not paid, created) from ``params.start`` to ``params.end`` inclusive, UTC days,
    oldest first, as typed cells in DONATION_COLUMNS' order."""
    query = (
        # Columns, not entities: a million rows without the ORM's identity map.
        select(
            Donation.id, Donation.paid_at, Supporter.email, Supporter.name, Donation.amount, Donation.currency,
            Donation.fee, Donation.net, Donation.frequency, Donation.status, Donation.amount_refunded,
            Campaign.slug, Donation.article_url, Donation.stripe_payment_intent_id, Donation.stripe_invoice_id,
            Donation.stripe_subscription_id, Donation.receipt_number, _payout_of_gift.label("payout_id"),
            Donation.settlement_currency, Donation.exchange_rate, Donation.booked_on, Donation.booking_note,
        )
        .join(Supporter, Donation.supporter_id == Supporter.id)
        .outerjoin(Campaign, Donation.campaign_id == Campaign.id)
        .where(*_donations_in(params))
        .order_by(_donation_time, Donation.id)
        .execution_options(yield_per=1000)
    )
    # "with": a writer that stops early (an error, a closed download) closes the server-side cursor at once.
    with db.session.connection().execute(query) as result:  # Core rows: no ORM loading per row
        for (donation_id, paid_at, email, name, amount, currency, fee, net, frequency, status, refunded, slug,
             article_url, intent, invoice, subscription, receipt, payout_id, settlement, rate, booked_on,
             note) in result:
            settled = settlement or currency
            paid_day = paid_at.astimezone(timezone.utc).date() if paid_at else None
            yield [
                donation_id, paid_at, email, name, Money(amount, currency), currency,
                None if fee is None else Money(fee, settled), None if net is None else Money(net, settled),
                frequency.value, status.value, Money(refunded, currency), slug, article_url, intent, invoice,
                subscription, receipt, payout_id, settlement, _rate(rate), booked_on,
                note if booked_on != paid_day else None,
            ]


# -- the same CSV built by PostgreSQL -------------------------------------------------------------------
# Python's per-cell formatting made the export ten times slower than PostgreSQL's COPY; these expressions
# make each CSV line in SQL instead, byte for byte what csv_cell and csv.writer write for donation_cells
# (tests/functional/test_export_fast_path.py compares the two).

#: An exchange rate whose str(Decimal(text)) is what PostgreSQL's numeric prints: plain digits at least
#: 1e-6 (smaller ones Python writes as 1E-7). Rates in any other form send the export down the Python path.
_PLAIN_RATE = r"^[0-9]+(\.[0-9]+)?$"


def _sql_csv_field(text):
    """csv.writer's QUOTE_MINIMAL: quoted when holding the delimiter, a quote, CR or LF; quotes doubled."""
    return case((text.regexp_match('[,"\r\n]'), literal('"') + func.replace(text, '"', '""') + '"'), else_=text)


def _sql_text(column):
    """registry.text_cell, then the CSV quoting; NULL as nothing."""
    value = cast(column, String)
    defused = case((func.left(value, 1).in_(FORMULA_STARTS), literal("'") + value), else_=value)
    one_line_end = func.replace(func.replace(defused, "\r\n", "\n"), "\r", "\n")
    return func.coalesce(_sql_csv_field(one_line_end), "")


def _sql_money(amount, currency, exponents: dict[str, int]):
    """Money.major_str in SQL: integer arithmetic on the minor units, the exponent looked up per currency."""
    exponent = case(exponents, value=currency)
    scale = case({code: 10**places for code, places in exponents.items()}, value=currency)
    minor = func.abs(cast(amount, BigInteger))
    decimal = (case((amount < 0, "-"), else_="") + cast(minor // scale, String) + "."
               + func.lpad(cast(minor % scale, String), exponent, "0"))
    return func.coalesce(case((exponent == 0, cast(amount, String)), else_=decimal), "")


def _sql_utc(moment):
    """registry.utc_text: ISO 8601 in UTC with a Z, microseconds only when there are some."""
    utc = func.timezone("UTC", moment)
    micro = func.to_char(utc, "US")
    return func.coalesce(func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS')
                         + case((micro != "000000", "." + micro), else_="") + "Z", "")


def _sql_date(day):
    return func.coalesce(func.to_char(day, "YYYY-MM-DD"), "")  # not ::text, which follows DateStyle


def donation_csv_lines(params: ExportParams) -> Iterator[str] | None:
    """donation_cells' rows as finished CSV lines (no line end) made by PostgreSQL, one text column per row
    through a server-side cursor; None when a row holds something only the Python path writes exactly (an
    exchange rate not in plain digits)."""
    where = _donations_in(params)
    odd_rate = exists().where(*where, Donation.exchange_rate.is_not(None), Donation.exchange_rate != "",
                              or_(~Donation.exchange_rate.regexp_match(_PLAIN_RATE),
                                  cast(Donation.exchange_rate, Numeric) < Decimal("0.000001")))
    if db.session.scalar(select(odd_rate)):
        return None
    codes = db.session.scalars(union(
        select(Donation.currency).where(*where),
        select(Donation.settlement_currency).where(*where, Donation.settlement_currency.is_not(None)),
    )).all()
    # Babel's exponents, as Money uses them; an unknown code fails here as Money(…) would.
    exponents = {code: currency_exponent(code) for code in codes if code}
    if not exponents:
        return iter(())
    return _donation_lines(where, exponents)


def _donation_lines(where, exponents: dict[str, int]) -> Iterator[str]:
    settled = func.coalesce(func.nullif(Donation.settlement_currency, ""), Donation.currency)
    paid_day = cast(func.timezone("UTC", Donation.paid_at), Date)
    rate = case((func.coalesce(Donation.exchange_rate, "") == "", null()),
                else_=cast(cast(Donation.exchange_rate, Numeric), String))
    cells = [
        cast(Donation.id, String), _sql_utc(Donation.paid_at), _sql_text(Supporter.email), _sql_text(Supporter.name),
        _sql_money(Donation.amount, Donation.currency, exponents), _sql_text(Donation.currency),
        _sql_money(Donation.fee, settled, exponents), _sql_money(Donation.net, settled, exponents),
        _sql_text(Donation.frequency), _sql_text(Donation.status),
        _sql_money(Donation.amount_refunded, Donation.currency, exponents), _sql_text(Campaign.slug),
        _sql_text(Donation.article_url), _sql_text(Donation.stripe_payment_intent_id),
        _sql_text(Donation.stripe_invoice_id), _sql_text(Donation.stripe_subscription_id),
        _sql_text(Donation.receipt_number), _sql_text(_payout_of_gift), _sql_text(Donation.settlement_currency),
        func.coalesce(rate, ""), _sql_date(Donation.booked_on),
        _sql_text(case((Donation.booked_on.is_not_distinct_from(paid_day), null()), else_=Donation.booking_note)),
    ]
    query = (
        select(func.concat_ws(",", *cells))
        .join_from(Donation, Supporter, Donation.supporter_id == Supporter.id)
        .outerjoin(Campaign, Donation.campaign_id == Campaign.id)
        .where(*where)
        .order_by(_donation_time, Donation.id)
        .execution_options(yield_per=5000)
    )
    with db.session.connection().execute(query) as result:
        yield from result.scalars()


def _donation_sheet(row: list) -> str:
    """One sheet per currency, and per settlement currency when fees are in another: amounts never mix."""
    currency, settled = row[5], row[18]
    return currency if settled in (None, currency) else f"{currency} in {settled}"


DONATIONS = register(ExportKind(
    name="donations",
    title="Donations",
    description="One row per donation paid in the period (UTC days, the last day included), with fee and net "
                "once Stripe has settled them, and the payout its money reached the bank in.",
    columns=DONATION_COLUMNS,
    count=count_donations,
    rows=donation_cells,
    csv_lines=donation_csv_lines,
    by_payout=True,
    sheet_of=_donation_sheet,
))


# -- supporters --------------------------------------------------------------------------------------

#: One row per supporter who agreed to hear from us by email and per currency they gave in (amounts are
#: never summed across currencies); a supporter without a paid gift yet has one row with no currency.
SUPPORTER_COLUMNS = [
    "email", "name", "consented_at", "consent_source", "currency", "gifts", "first_gift_at", "last_gift_at",
    "total", "active_recurring",
]

#: A monthly or yearly gift that is still running, whether or not its last payment went through.
RUNNING = (RecurringStatus.ACTIVE, RecurringStatus.PAST_DUE, RecurringStatus.PAUSED)


def _consented_in(params: ExportParams):
    return (Supporter.mailing_consent_at.is_not(None), Supporter.mailing_consent_at >= params.since,
            Supporter.mailing_consent_at < params.until)


def _gifts_per_currency():
    """Paid gifts per supporter and currency: how many, first, last, and what they came to net of refunds."""
    return (
        select(
            Donation.supporter_id,
            Donation.currency,
            func.count().label("gifts"),
            func.min(Donation.paid_at).label("first_gift_at"),
            func.max(Donation.paid_at).label("last_gift_at"),
            func.sum(Donation.amount - Donation.amount_refunded).label("total"),
        )
        .where(Donation.paid_at.is_not(None))
        .group_by(Donation.supporter_id, Donation.currency)
        .subquery()
    )


def _supporter_query(params: ExportParams):
    gifts = _gifts_per_currency()
    running = exists().where(RecurringDonation.supporter_id == Supporter.id, RecurringDonation.status.in_(RUNNING))
    query = (
        select(Supporter.email, Supporter.name, Supporter.mailing_consent_at, Supporter.mailing_consent_source,
               gifts.c.currency, gifts.c.gifts, gifts.c.first_gift_at, gifts.c.last_gift_at, gifts.c.total,
               running.label("active_recurring"))
        .outerjoin(gifts, gifts.c.supporter_id == Supporter.id)
        .where(*_consented_in(params))
    )
    return query, gifts


def count_supporters(params: ExportParams) -> int:
    """Rows of the supporters export: consenting supporters times the currencies each gave in (at least one)."""
    query, _ = _supporter_query(params)
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


def supporter_cells(params: ExportParams) -> Iterator[list]:
    """Supporters whose mailing consent was given in the period (UTC days), oldest consent first, as typed
    cells in SUPPORTER_COLUMNS' order."""
    query, gifts = _supporter_query(params)
    query = (query.order_by(Supporter.mailing_consent_at, Supporter.id, gifts.c.currency)
             .execution_options(yield_per=1000))
    with db.session.execute(query) as result:
        for email, name, consented, source, currency, gifts_, first, last, total, running in result:
            yield [email, name, consented, source, currency, gifts_ or 0, first, last,
                   None if currency is None else Money(int(total), currency), bool(running)]


SUPPORTERS = register(ExportKind(
    name="supporters",
    title="Supporters",
    description="Supporters who agreed to hear from us by email, by the day they agreed (UTC days, the last day "
                "included): one row per currency they gave in, totals net of refunds, never summed across "
                "currencies.",
    columns=SUPPORTER_COLUMNS,
    count=count_supporters,
    rows=supporter_cells,
))
