"""Annual donation statements: what a supporter gave in a fiscal year, issued once with a gap-free number,
frozen as a snapshot, sent as a PDF, and re-issued by staff as a marked copy."""
from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta, timezone
from functools import partial
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale, gettext
from markupsafe import Markup
from sqlalchemy import case, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from ..config import statements_day
from ..db import next_number, now_utc
from ..extensions import db
from ..i18n import LANGUAGES, email_locale, format_day
from ..ledger.models import Dispute, Donation, DonationStatus, Supporter
from ..mail import attachments, emails
from ..money import Money
from .registry import fiscal_year_days
from .models import AnnualStatement, StatementSequence

log = logging.getLogger(__name__)

#: Donations whose money arrived; what happened to it later (refunds, chargebacks) is deducted line by line.
PAID = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED, DonationStatus.DISPUTED)
ATTACHMENT_KIND = "annual_statement"
#: The language of statements issued before they were translated (their snapshot names none).
ORIGINAL_LOCALE = "en"


class StatementError(ValueError):
    """A statement that cannot be issued as asked; the message is shown to staff or on the command line."""


class AlreadyIssued(StatementError):
    """The supporter has a statement for this fiscal year already (perhaps issued by a run racing this one)."""


# -- fiscal years ---------------------------------------------------------------------------------------

def _start_month() -> int:
    return current_app.config["FISCAL_YEAR_START_MONTH"]


def fiscal_year_bounds(fiscal_year: int) -> tuple[datetime, datetime]:
    """The fiscal year as UTC instants: from 00:00 of its first day up to (not including) 00:00 after its last."""
    first, last = fiscal_year_days(fiscal_year, _start_month())
    return (datetime.combine(first, time.min, timezone.utc),
            datetime.combine(last + timedelta(days=1), time.min, timezone.utc))


def fiscal_year_label(fiscal_year: int) -> str:
    """``2026`` for a calendar fiscal year, ``2026/27`` for one that starts in another month."""
    return str(fiscal_year) if _start_month() == 1 else f"{fiscal_year}/{(fiscal_year + 1) % 100:02d}"


def last_ended_fiscal_year(before: date) -> int:
    """The latest fiscal year whose last day is before ``before``."""
    year = before.year
    while fiscal_year_days(year, _start_month())[1] >= before:
        year -= 1
    return year


def due_fiscal_year(today: date) -> int | None:
    """The fiscal year whose statements are due on ``today``: from ANNUAL_STATEMENTS_DATE on, the one that
    ended before that day; None before the day comes round each year."""
    day = statements_day(current_app.config["ANNUAL_STATEMENTS_DATE"], today.year)
    return last_ended_fiscal_year(day) if today >= day else None


def check_fiscal_year(fiscal_year: int, today: date | None = None) -> None:
    """StatementError unless ``fiscal_year`` is a year that has ended (a statement covers a whole year)."""
    today = today or now_utc().date()
    if not 2000 <= fiscal_year <= 2100:
        raise StatementError(f"{fiscal_year} is not a fiscal year we can issue statements for (2000–2100).")
    first, last = fiscal_year_days(fiscal_year, _start_month())
    if last >= today:
        raise StatementError(f"Fiscal year {fiscal_year_label(fiscal_year)} ({first.isoformat()} to "
                             f"{last.isoformat()}) has not ended yet.")


# -- content --------------------------------------------------------------------------------------------

def next_statement_number(fiscal_year: int) -> str:
    """Take the next statement number of ``fiscal_year``.

    The counter row stays locked until the transaction ends and rolls back with it (a savepoint too),
    so numbers are unique and without gaps, like receipt numbers.
    """
    number = next_number(db.session, StatementSequence, "fiscal_year", fiscal_year)
    return f"S{fiscal_year}-{number:06d}"


def _returned():
    """Money that went back on a donation through a chargeback the publisher lost."""
    return (select(func.coalesce(func.sum(Dispute.amount), 0))
            .where(Dispute.donation_id == Donation.id, Dispute.status == "lost", Dispute.currency == Donation.currency)
            .scalar_subquery())


def _left():
    """What is left of a donation after refunds and lost chargebacks (negative if both hit the same money)."""
    return Donation.amount - Donation.amount_refunded - _returned()


def _gifts_in(fiscal_year: int):
    since, until = fiscal_year_bounds(fiscal_year)
    return (Donation.status.in_(PAID), Donation.paid_at >= since, Donation.paid_at < until)


def document_locale(supporter: Supporter) -> str:
    """The statement's language: the supporter's, chosen as for their emails, if we have the words for it (``de``,
    ``fr``, ``en_GB``); English otherwise, so that a document is never English words around Spanish dates.

    It is frozen with the rest of the snapshot: a copy years later is in the language of the original, even if
    the supporter has changed theirs since."""
    locale = emails.supporter_locale(supporter)
    return locale if locale.split("_")[0] in LANGUAGES else ORIGINAL_LOCALE


def statement_content(supporter: Supporter, fiscal_year: int) -> dict[str, Any] | None:
    """What the statement of ``supporter`` for ``fiscal_year`` shows, in minor units; None when nothing
    net was given (every gift refunded, or none at all).

    Each gift paid in the fiscal year (UTC days) is a line: amount, what was refunded or charged back
    since, and the net given. Totals are per currency: amounts in different currencies are never added.
    """
    rows = db.session.execute(
        select(Donation, _returned()).where(Donation.supporter_id == supporter.id, *_gifts_in(fiscal_year))
        .order_by(Donation.paid_at, Donation.id)
    ).all()
    lines, totals = [], {}
    for donation, lost in rows:
        refunded = min(donation.amount, donation.amount_refunded + int(lost or 0))
        line = {"date": donation.paid_at.astimezone(timezone.utc).date().isoformat(),
                "receipt_number": donation.receipt_number or "", "currency": donation.currency,
                "amount": donation.amount, "refunded": refunded, "net": donation.amount - refunded}
        lines.append(line)
        total = totals.setdefault(donation.currency, {"currency": donation.currency, "amount": 0, "refunded": 0,
                                                      "net": 0, "gifts": 0})
        for key in ("amount", "refunded", "net"):
            total[key] += line[key]
        total["gifts"] += 1
    if not any(total["net"] > 0 for total in totals.values()):
        return None
    first, last = fiscal_year_days(fiscal_year, _start_month())
    config = current_app.config
    return {
        "version": 1,
        "locale": document_locale(supporter),
        "fiscal_year": fiscal_year,
        "fiscal_year_label": fiscal_year_label(fiscal_year),
        "period": {"first": first.isoformat(), "last": last.isoformat()},
        "issuer": {"legal_name": config["PUBLISHER_LEGAL_NAME"], "publication": config["PUBLICATION_NAME"],
                   "address": config["PUBLISHER_ADDRESS"], "tax_id": config["PUBLISHER_TAX_ID"],
                   "registration": config["PUBLISHER_REGISTRATION"], "public_url": config["PUBLIC_URL"]},
        "supporter": {"name": supporter.name or "", "email": supporter.email},
        "lines": lines,
        "totals": [totals[code] for code in sorted(totals)],
    }


# -- issuing --------------------------------------------------------------------------------------------

def statement_for(supporter_id: int, fiscal_year: int) -> AnnualStatement | None:
    """The supporter's statement for the year, if it has been issued."""
    return db.session.scalars(select(AnnualStatement).where(AnnualStatement.supporter_id == supporter_id,
                                                            AnnualStatement.fiscal_year == fiscal_year)).one_or_none()


def issue_statement(supporter: Supporter, fiscal_year: int) -> AnnualStatement | None:
    """Issue the statement of ``supporter`` for ``fiscal_year`` and queue its email, in this transaction.

    None when nothing net was given in the year; AlreadyIssued when a statement exists. The check is
    made again after the counter's lock is taken: a run racing this one has committed by then, and its
    statement is seen (PostgreSQL, read committed). The unique (supporter, year) constraint backs it up.
    """
    if statement_for(supporter.id, fiscal_year) is not None:
        raise AlreadyIssued(f"{supporter.email} has a statement for {fiscal_year_label(fiscal_year)} already.")
    content = statement_content(supporter, fiscal_year)
    if content is None:
        return None
    number = next_statement_number(fiscal_year)
    if statement_for(supporter.id, fiscal_year) is not None:
        raise AlreadyIssued(f"{supporter.email} has a statement for {fiscal_year_label(fiscal_year)} already.")
    issued_at = now_utc()
    content.update(number=number, issued_on=issued_at.date().isoformat())
    statement = AnnualStatement(supporter_id=supporter.id, fiscal_year=fiscal_year, number=number,
                                issued_at=issued_at, content=content)
    db.session.add(statement)
    db.session.flush()
    emails.queue_annual_statement(statement, supporter)
    return statement


def supporters_due(fiscal_year: int, after_id: int = 0, limit: int = 100) -> list[int]:
    """Supporters who gave something net in ``fiscal_year`` and have no statement for it, by id, after ``after_id``."""
    has_statement = exists().where(AnnualStatement.supporter_id == Donation.supporter_id,
                                   AnnualStatement.fiscal_year == fiscal_year)
    return list(db.session.scalars(
        select(Donation.supporter_id)
        .where(*_gifts_in(fiscal_year), Donation.supporter_id > after_id, ~has_statement)
        .group_by(Donation.supporter_id, Donation.currency)
        # The same net as statement_content, so a supporter whose gifts all went back is not looked at daily.
        .having(func.sum(case((_left() > 0, _left()), else_=0)) > 0)
        .order_by(Donation.supporter_id)
        .distinct()
        .limit(limit)
    ))


def issue_statements(fiscal_year: int, batch: int = 100) -> dict[str, int]:
    """Issue every missing statement of ``fiscal_year``, one email each, committing batch by batch.

    Each supporter is issued in a savepoint of its own: one that fails is rolled back alone (its number
    too, so none is skipped), logged, and tried again on the next run. Running this twice, or twice at
    once, issues each statement once.
    """
    counts = {"issued": 0, "already": 0, "nothing": 0, "failed": 0}
    after = 0
    while ids := supporters_due(fiscal_year, after, batch):
        for supporter_id in ids:
            after = supporter_id
            try:
                with db.session.begin_nested():
                    statement = issue_statement(db.session.get(Supporter, supporter_id), fiscal_year)
            except (AlreadyIssued, IntegrityError):
                counts["already"] += 1
            except Exception:
                log.exception("statement of supporter %s for fiscal year %s failed", supporter_id, fiscal_year)
                counts["failed"] += 1
            else:
                counts["issued" if statement else "nothing"] += 1
        db.session.commit()
    db.session.commit()
    return counts


def reissue_statement(statement: AnnualStatement) -> int:
    """Send the statement again as a copy (marked COPY with today's date, otherwise the same document).

    The count is taken by one UPDATE, so two staff clicking at once make two copies, each with an email.
    Returns the copy's number.
    """
    at = now_utc()
    count = db.session.execute(
        update(AnnualStatement).where(AnnualStatement.id == statement.id)
        .values(reissued_count=AnnualStatement.reissued_count + 1, reissued_at=at)
        .returning(AnnualStatement.reissued_count)
    ).scalar_one()
    db.session.refresh(statement)
    emails.queue_annual_statement(statement, statement.supporter, reissue=count, reissued_on=at.date())
    return count


def statements_of(supporter: Supporter) -> list[AnnualStatement]:
    """Every statement of the supporter, the latest fiscal year first."""
    return list(db.session.scalars(select(AnnualStatement).where(AnnualStatement.supporter_id == supporter.id)
                                   .order_by(AnnualStatement.fiscal_year.desc())))


def own_statement(supporter: Supporter, statement_id: int) -> AnnualStatement | None:
    """The statement if it is this supporter's; None for anyone else's, so a guessed id shows nothing."""
    statement = db.session.get(AnnualStatement, statement_id)
    return statement if statement is not None and statement.supporter_id == supporter.id else None


# -- the document ---------------------------------------------------------------------------------------

def statement_locale(content: dict[str, Any]) -> str:
    """The language the statement was issued in; English for those issued before statements were translated."""
    return email_locale(content.get("locale")) if content.get("locale") else ORIGINAL_LOCALE


def _day(iso: str, locale: str) -> str:
    return format_day(date.fromisoformat(iso), locale)


def _money(amount: int, currency: str, locale: str) -> str:
    return Money(amount, currency).format(locale)


def _css_string(text: str) -> Markup:
    """``text`` as a quoted CSS string, for the page margins' ``content`` (text in a style sheet is not HTML:
    entities are not decoded there, so the translation is escaped for CSS instead, and cannot end the style)."""
    if isinstance(text, Markup):
        text = text.unescape()
    escaped = "".join(f"\\{ord(c):x} " if c in '"\\<>&\'' or ord(c) < 32 else c for c in str(text))
    return Markup(f'"{escaped}"')


def _page_counter() -> Markup:
    """The translated "Page 1 of 2" as a CSS ``content`` value: the words as strings around the page counters."""
    parts = re.split(r"%\((page|pages)\)s", gettext("Page %(page)s of %(pages)s"))
    return Markup(" ").join(_css_string(part) if n % 2 == 0 else Markup(f"counter({part})")
                            for n, part in enumerate(parts) if part)


def render_statement_html(content: dict[str, Any], *, reissue: int = 0, reissued_on: date | str | None = None) -> str:
    """The statement as print HTML, drawn from its snapshot only, in the language it was issued in (words,
    amounts and dates); a re-issue carries the COPY mark."""
    if isinstance(reissued_on, date):
        reissued_on = reissued_on.isoformat()
    locale = statement_locale(content)
    with force_locale(locale):
        return render_template("statements/statement.html", s=content, day=partial(_day, locale=locale),
                               money=partial(_money, locale=locale), css_string=_css_string,
                               page_counter=_page_counter(), copy=reissue > 0, reissued_on=reissued_on)


def render_statement_pdf(content: dict[str, Any], *, reissue: int = 0, reissued_on: date | str | None = None) -> bytes:
    """The statement as an A4 PDF (WeasyPrint). The template links no images, fonts or style sheets, and
    everything a supporter or staff typed is escaped text, so nothing is ever fetched."""
    from weasyprint import HTML  # heavy; only the sender and the downloads need it

    # WeasyPrint reports every step at INFO; the app logs at INFO, and a run of statements would drown it.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

    html = render_statement_html(content, reissue=reissue, reissued_on=reissued_on)
    return HTML(string=html).write_pdf()


def pdf_filename(statement: AnnualStatement, reissue: int = 0) -> str:
    """``statement-S2026-000001.pdf``; a copy says which one."""
    return f"statement-{statement.number}" + (f"-copy-{reissue}" if reissue else "") + ".pdf"


def statement_attachment(statement_id: int, reissue: int = 0, reissued_on: str | None = None
                         ) -> tuple[str, str, bytes]:
    """The outbox renderer for ``annual_statement`` attachments."""
    statement = db.session.get(AnnualStatement, statement_id)
    if statement is None:
        raise LookupError(f"annual statement {statement_id} does not exist")
    pdf = render_statement_pdf(statement.content, reissue=reissue, reissued_on=reissued_on)
    return pdf_filename(statement, reissue), "application/pdf", pdf


def register_attachments() -> None:
    """Called by the app factory: the outbox can render statement PDFs from then on."""
    attachments.register(ATTACHMENT_KIND, statement_attachment)
