"""One function per email: each returns the template context and queues the message in the outbox."""
from __future__ import annotations

from typing import TYPE_CHECKING

from datetime import date

from flask import current_app
from flask_babel import force_locale

from ..accounts.tokens import manage_url
from ..checkout.models import CheckoutAttempt
from ..extensions import db
from ..i18n import current_locale, email_locale, format_day
from ..money import Money
from . import outbox
from .attachments import describe

if TYPE_CHECKING:
    from ..ledger.models import Donation, RecurringDonation, Supporter
    from ..reports.models import AnnualStatement


def _base(supporter: Supporter) -> dict:
    return {
        "publication": current_app.config["PUBLICATION_NAME"],
        "public_url": current_app.config["PUBLIC_URL"],
        "name": supporter.name,
        "manage_url": manage_url(supporter.id, supporter.email),
    }


def _date(moment, locale: str | None = None) -> str:
    """A day as readers of ``locale`` (default: the email's) write it: 26 November 2026, 26. November 2026."""
    return format_day(moment, locale)


def reader_locale(attempt_id: str | None) -> str:
    """The locale the reader gave in."""
    attempt = db.session.get(CheckoutAttempt, attempt_id) if attempt_id else None
    return attempt.locale if attempt is not None else "en"


def supporter_locale(supporter: Supporter, attempt_id: str | None = None) -> str:
    """The language of an email to ``supporter``: their saved language, else the locale of the gift's page,
    else English. Words, amounts and dates all follow it."""
    return email_locale(supporter.locale, reader_locale(attempt_id) if attempt_id else None)


def receipt_context(donation: Donation, receipt_number: str | None = None) -> dict:
    """``receipt_number`` is printed instead of the donation's own while that is still to be taken (at commit)."""
    recurring = donation.recurring_donation
    locale = current_locale()
    return {
        **_base(donation.supporter),
        "amount": donation.money.format(locale),
        "covered_fee": donation.covered_fee,
        "frequency": donation.frequency,
        "date": _date(donation.paid_at, locale),
        "receipt_number": receipt_number or donation.receipt_number,
        "donation_id": donation.id,
        "recurring": recurring is not None,
        "next_date": _date(recurring.current_period_end, locale) if recurring else "",
    }


def queue_receipt(donation: Donation, resend: int = 0, *, receipt_number: str | None = None) -> str:
    """The receipt for a succeeded donation; its dedupe key makes a second one impossible.
    Staff may send it again on purpose: each resend is numbered and has a key of its own.

    ``receipt_number`` stands in for a number not yet taken (see ledger.operations.mark_succeeded): the email is
    rendered around it, and the statement that takes the number replaces it. Returns the email's dedupe key."""
    key = f"receipt:{donation.id}" + (f":resend:{resend}" if resend else "")
    recurring = donation.recurring_donation
    locale = supporter_locale(donation.supporter, donation.attempt_id or (recurring.attempt_id if recurring else None))
    with force_locale(locale):
        context = receipt_context(donation, receipt_number)
    outbox.queue("receipt", donation.supporter.email, context, dedupe_key=key, locale=locale)
    return key


def payment_failed_context(recurring: RecurringDonation) -> dict:
    return {
        **_base(recurring.supporter),
        "amount": recurring.money.format(current_locale()),
        "every": recurring.frequency.every,
    }


def queue_payment_failed(recurring: RecurringDonation, invoice_id: str, attempt: int) -> None:
    """Dunning: one email per invoice and payment attempt, however often Stripe repeats the event."""
    locale = supporter_locale(recurring.supporter, recurring.attempt_id)
    with force_locale(locale):
        context = payment_failed_context(recurring)
    outbox.queue("payment_failed", recurring.supporter.email, context,
                 dedupe_key=f"payment_failed:{invoice_id}:{attempt}", locale=locale)


def recurring_canceled_context(recurring: RecurringDonation) -> dict:
    return {
        **_base(recurring.supporter),
        "amount": recurring.money.format(current_locale()),
        "every": recurring.frequency.every,
        "label": recurring.frequency.label.lower(),
        "frequency": recurring.frequency.value,
        "at_period_end": recurring.ends_at_period_end,
        "end_date": _date(recurring.current_period_end),
    }


def queue_recurring_canceled(recurring: RecurringDonation) -> None:
    """Confirms a cancellation the supporter asked for (now or at the end of the period)."""
    locale = supporter_locale(recurring.supporter, recurring.attempt_id)
    with force_locale(locale):
        context = recurring_canceled_context(recurring)
    outbox.queue("recurring_canceled", recurring.supporter.email, context,
                 dedupe_key=f"recurring_canceled:{recurring.id}:{recurring.status.value}", locale=locale)


def refund_context(donation: Donation, refunded: int) -> dict:
    locale = current_locale()
    return {
        **_base(donation.supporter),
        "refund": Money(refunded, donation.currency).format(locale),
        "amount": donation.money.format(locale),
        "kept": Money(donation.amount - donation.amount_refunded, donation.currency).format(locale),
        "full": donation.amount_refunded >= donation.amount,
        "date": _date(donation.paid_at, locale),
        "receipt_number": donation.receipt_number,
    }


def queue_refund(donation: Donation, refunded: int) -> None:
    """Tells the supporter that ``refunded`` (minor units) of their gift went back to them, once per refund
    booked: the key holds the running total refunded, which every booked refund raises and no repeat of
    Stripe's event does."""
    recurring = donation.recurring_donation
    locale = supporter_locale(donation.supporter, donation.attempt_id or (recurring.attempt_id if recurring else None))
    with force_locale(locale):
        context = refund_context(donation, refunded)
    outbox.queue("refund", donation.supporter.email, context,
                 dedupe_key=f"refund:{donation.id}:{donation.amount_refunded}", locale=locale)


def queue_manage_link(supporter: Supporter, nonce: str) -> None:
    """A fresh "manage your donations" link, asked for on /account."""
    outbox.queue("manage_link", supporter.email, _base(supporter), dedupe_key=f"manage_link:{supporter.id}:{nonce}",
                 locale=email_locale(supporter.locale, current_locale()))  # else the page they asked on


def annual_statement_context(statement: AnnualStatement, supporter: Supporter, copy: bool) -> dict:
    content = statement.content
    return {
        **_base(supporter),
        "copy": copy,
        "number": statement.number,
        "fiscal_year_label": content["fiscal_year_label"],
        "period": " – ".join(_date(date.fromisoformat(content["period"][end])) for end in ("first", "last")),
        "totals": [{"currency": t["currency"], "net": Money(t["net"], t["currency"]).format(current_locale())}
                   for t in content["totals"]],
    }


def queue_annual_statement(statement: AnnualStatement, supporter: Supporter, reissue: int = 0,
                           reissued_on: date | None = None) -> None:
    """The year's donation statement with its PDF attached (drawn when the email is sent). One email per
    statement; each re-issue by staff is numbered, has a key of its own, and its PDF is marked as a copy."""
    key = f"annual_statement:{statement.id}" + (f":reissue:{reissue}" if reissue else "")
    spec = describe("annual_statement", statement_id=statement.id, reissue=reissue,
                    reissued_on=reissued_on.isoformat() if reissued_on else None)
    locale = supporter_locale(supporter)
    with force_locale(locale):
        context = annual_statement_context(statement, supporter, bool(reissue))
    outbox.queue("annual_statement", supporter.email, context, dedupe_key=key, attachments=[spec], locale=locale)
