"""The donations and supporters exports, registered in :mod:`donations.reports.registry` (which says how
an export kind is built and written). Rows are streamed, so a million donations fit in little memory."""
from __future__ import annotations

from datetime import timezone
from decimal import Decimal, InvalidOperation
from typing import Iterator

from sqlalchemy import Date, Engine, Numeric, String, and_, case, cast, exists, func, literal, null, or_, select, tuple_

from ..campaigns.models import Campaign
from .replica import reads
from ..ledger.models import Donation, LedgerLine, LineKind, Payout, RecurringDonation, RecurringStatus, Supporter
from ..money import Money, currency_exponent, normalise_currency
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
    return reads().scalar(select(func.count()).select_from(Donation).where(*_donations_in(params)))


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
    with reads().connection().execute(query) as result:  # Core rows: no ORM loading per row
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
# Python's per-cell formatting made the export ten times slower than PostgreSQL's COPY. These expressions
# compute each cell in SQL, and COPY … TO STDOUT WITH CSV writes the lines (its quoting in C is csv.writer's
# QUOTE_MINIMAL: a cell holding a comma, a quote, CR or LF is quoted, quotes doubled), byte for byte what
# csv_cell and csv.writer write for donation_cells (tests/functional/test_export_fast_path.py compares the two).
# COPY writes "" for an empty text and nothing for NULL, where csv.writer writes nothing for both: every cell
# that can be empty is NULL instead.

#: An exchange rate whose str(Decimal(text)) is what PostgreSQL's numeric prints: plain digits at least
#: 1e-6 (smaller ones Python writes as 1E-7). Rates in any other form send the export down the Python path.
_PLAIN_RATE = r"^[0-9]+(\.[0-9]+)?$"


def _sql_text(column):
    """registry.text_cell: a leading = + - @ tab or CR gets a ' in front, CR LF and CR become LF; empty as
    NULL. The checks read the stored text: most cells need neither and cost one strpos and one ascii."""
    value = cast(column, String)
    one_line_end = case(
        (func.strpos(value, "\r") > 0, func.replace(func.replace(value, "\r\n", "\n"), "\r", "\n")), else_=value)
    formula = func.ascii(value).in_([ord(char) for char in FORMULA_STARTS])  # an int: no substring made
    return func.nullif(case((formula, literal("'") + one_line_end), else_=one_line_end), "")


def _sql_money(amount, currency, exponents: dict[str, int]):
    """Money.major_str in SQL: the minor units times 10^-exponent as a numeric of exactly that scale
    (PostgreSQL's product has the sum of its factors' scales), so 2500 EUR is 25.00, -5 is -0.05, JPY 2500."""
    factor = case({code: Decimal(f"1e-{places}") if places else Decimal(1) for code, places in exponents.items()},
                  value=currency)
    return cast(cast(amount, Numeric) * factor, String)


def _sql_utc(moment):
    """registry.utc_text: ISO 8601 in UTC with a Z, microseconds only when there are some."""
    text = func.to_char(func.timezone("UTC", moment), 'YYYY-MM-DD"T"HH24:MI:SS.US')
    return func.replace(text, ".000000", "") + "Z"  # NULL stays NULL


def _sql_date(day):
    return func.to_char(day, "YYYY-MM-DD")  # not ::text, which follows DateStyle


def _odd_rate():
    # CASE, not OR: PostgreSQL may evaluate OR's arms in any order, and "abc"::numeric is an error.
    return case((func.coalesce(Donation.exchange_rate, "") == "", False),
                (Donation.exchange_rate.regexp_match(_PLAIN_RATE),
                 cast(Donation.exchange_rate, Numeric) < Decimal("0.000001")),
                else_=True)


def donation_csv_lines(params: ExportParams) -> Iterator[str] | None:
    """donation_cells' rows as finished CSV lines (no line end) written by PostgreSQL's COPY; None when a
    row holds something only the Python path writes exactly (an exchange rate not in plain digits, a
    currency code not spelt as Babel spells it)."""
    where = _donations_in(params)
    # One pass first: the currencies to look up, and whether any rate needs Python.
    seen = reads().execute(
        select(Donation.currency, Donation.settlement_currency, func.bool_or(_odd_rate()))
        .where(*where).group_by(Donation.currency, Donation.settlement_currency)
    ).all()
    codes = {code for row in seen for code in row[:2] if code}
    # Babel's exponents, as Money uses them; an unknown code fails here as Money(…) would. A code stored
    # other than as Babel spells it (" eur") is written as stored, which only text_cell does exactly.
    exponents = {code: currency_exponent(code) for code in codes}
    if any(odd for _, _, odd in seen) or any(normalise_currency(code) != code for code in codes):
        return None
    if not exponents:
        return iter(())
    return _donation_lines(where, exponents)


def _donation_lines(where, exponents: dict[str, int]) -> Iterator[str]:
    settled = func.coalesce(func.nullif(Donation.settlement_currency, ""), Donation.currency)
    # The payout made a CSV cell inside its subquery: run once per row, not once per use in _sql_text.
    payout = (
        select(_sql_text(Payout.stripe_payout_id)).join(LedgerLine, LedgerLine.payout_id == Payout.id)
        .where(LedgerLine.donation_id == Donation.id, LedgerLine.kind == LineKind.GIFT)
        .limit(1).scalar_subquery()
    )
    paid_day = cast(func.timezone("UTC", Donation.paid_at), Date)
    rate = case((func.coalesce(Donation.exchange_rate, "") == "", null()),
                else_=cast(cast(Donation.exchange_rate, Numeric), String))
    cells = [
        cast(Donation.id, String), _sql_utc(Donation.paid_at), _sql_text(Supporter.email), _sql_text(Supporter.name),
        # Currencies are the codes just checked against Babel's list, frequency and status are held to their
        # values by CHECK constraints: plain words that text_cell leaves as they are.
        _sql_money(Donation.amount, Donation.currency, exponents), Donation.currency,
        _sql_money(Donation.fee, settled, exponents), _sql_money(Donation.net, settled, exponents),
        cast(Donation.frequency, String), cast(Donation.status, String),
        _sql_money(Donation.amount_refunded, Donation.currency, exponents), _sql_text(Campaign.slug),
        _sql_text(Donation.article_url), _sql_text(Donation.stripe_payment_intent_id),
        _sql_text(Donation.stripe_invoice_id), _sql_text(Donation.stripe_subscription_id),
        _sql_text(Donation.receipt_number), payout, func.nullif(Donation.settlement_currency, ""),
        rate, _sql_date(Donation.booked_on),
        _sql_text(case((Donation.booked_on.is_not_distinct_from(paid_day), null()), else_=Donation.booking_note)),
    ]
    query = (
        select(*(cell.label(f"c{i}") for i, cell in enumerate(cells)))
        .join_from(Donation, Supporter, Donation.supporter_id == Supporter.id)
        .outerjoin(Campaign, Donation.campaign_id == Campaign.id)
        .where(*where)
        .order_by(_donation_time, Donation.id)
    )
    bind = reads().get_bind()
    if isinstance(bind, Engine):
        # A connection of the export's own, on which nothing else runs: one COPY, streamed, where PostgreSQL
        # scans and joins the tables once and sorts (the job's progress goes through other connections).
        with bind.connect() as own:
            own.exec_driver_sql("SET LOCAL jit = off")  # compiling the cells' expressions costs more than it saves
            yield from _copy_lines(own, query)
        return
    # The session is held to one connection (the tests bind every session to theirs), which psycopg holds
    # for the whole of a COPY, while the job's progress writes would need it: COPYs of COPY_BATCH donations.
    connection = reads().connection()
    # The plan's cost (a subquery per row) calls for JIT compiling, which each COPY would do again for its
    # batch: seconds of compiling for a batch that takes less than that to run.
    connection.exec_driver_sql("SET LOCAL jit = off")
    query = query.limit(COPY_BATCH)
    after = None
    while True:
        batch = query if after is None else query.where(tuple_(_donation_time, Donation.id) > tuple_(*after))
        lines = list(_copy_lines(connection, batch))
        # Yielded once the COPY is over: whoever consumes the lines (run_export's progress writes) may use the
        # connection again.
        yield from lines
        if len(lines) < COPY_BATCH:
            return
        last_id = int(lines[-1].split(",", 1)[0])  # the first cell, the donation's id, is plain digits
        after = (connection.scalar(select(_donation_time).where(Donation.id == last_id)), last_id)


#: Donations per COPY in the SQL path when the export's session is held to one connection (the tests). psycopg
#: holds the connection for the whole of a COPY, so nothing else (the job's progress) may run on it until the
#: COPY ends: the export is then made of COPYs of this many rows each, the next one starting after the last key
#: of the one before, each read into memory (about 20 MB) first. No index serves that order: the path is for
#: small data, and a big table would pay for one on every gift.
COPY_BATCH = 50_000


def _copy_lines(connection, query) -> Iterator[str]:
    """The query's rows as CSV lines (no line end) written by COPY … WITH CSV."""
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    # COPY, not a cursor: the rows come without FETCH round trips and COPY quotes them in C. psycopg binds the
    # parameters client-side, as COPY needs.
    cursor = connection.connection.driver_connection.cursor()
    try:
        # "with": a writer that stops early (an error, a closed download) cancels the COPY at once.
        with cursor.copy(f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv, ENCODING 'UTF8')",
                         compiled.params) as copy:
            for row in copy:  # one row per message, ending in LF: the writer adds CRLF
                yield str(row[:-1], "utf-8")
    finally:
        cursor.close()


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
    return reads().scalar(select(func.count()).select_from(query.subquery()))


def supporter_cells(params: ExportParams) -> Iterator[list]:
    """Supporters whose mailing consent was given in the period (UTC days), oldest consent first, as typed
    cells in SUPPORTER_COLUMNS' order."""
    query, gifts = _supporter_query(params)
    query = (query.order_by(Supporter.mailing_consent_at, Supporter.id, gifts.c.currency)
             .execution_options(yield_per=1000))
    with reads().execute(query) as result:
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
