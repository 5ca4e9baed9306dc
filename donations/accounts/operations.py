"""Supporter self-service: what a supporter may do with their own gifts from a signed link."""
from __future__ import annotations

import secrets
from datetime import timedelta

from flask_babel import gettext
from sqlalchemy import select

from ..dates import add_months
from ..db import now_utc
from ..extensions import db
from ..ledger import operations as ledger
from ..ledger.models import Donation, DonationStatus, Frequency, RecurringDonation, RecurringStatus, Supporter
from ..mail import emails
from ..money import Money
from ..payments.gateway import get_gateway
from ..security import privacy
from .tokens import InvalidToken, read_token

PAUSE_MONTHS = (1, 2, 3)
#: What the supporter clicked to withdraw, kept in their consent history.
WITHDRAW_WORDING = "Stop these emails"


class NotAllowed(ValueError):
    """The action does not fit the gift's state; the message is shown to the supporter."""


def set_language(supporter: Supporter, language: str) -> None:
    """The language the supporter reads us in from now on (their account pages and every email)."""
    supporter.locale = language
    db.session.flush()


def supporter_from_token(token: str) -> Supporter:
    supporter_id, email = read_token(token)
    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None or supporter.email != email:
        raise InvalidToken(gettext("This link is not valid."))
    return supporter


def history(supporter: Supporter) -> list[Donation]:
    return list(db.session.scalars(
        select(Donation)
        .where(Donation.supporter_id == supporter.id, Donation.status != DonationStatus.PENDING)
        .order_by(Donation.paid_at.desc().nulls_last(), Donation.id.desc())
    ))


def recurring_gifts(supporter: Supporter) -> list[RecurringDonation]:
    return list(db.session.scalars(
        select(RecurringDonation).where(RecurringDonation.supporter_id == supporter.id)
        .order_by(RecurringDonation.created_at.desc())
    ))


def own_recurring(supporter: Supporter, recurring_id: int) -> RecurringDonation | None:
    recurring = db.session.get(RecurringDonation, recurring_id)
    return recurring if recurring is not None and recurring.supporter_id == supporter.id else None


def own_donation(supporter: Supporter, donation_id: int) -> Donation | None:
    donation = db.session.get(Donation, donation_id)
    return donation if donation is not None and donation.supporter_id == supporter.id else None


def _require_open(recurring: RecurringDonation) -> None:
    if recurring.status is RecurringStatus.CANCELED:
        raise NotAllowed(gettext("This gift has been cancelled."))


def _require_continuing(recurring: RecurringDonation) -> None:
    """A gift that ends at the end of its period has no next payment to change, pause or resume."""
    _require_open(recurring)
    if recurring.cancel_at_period_end:
        raise NotAllowed(gettext("This gift ends at the end of the period you paid for; nothing more will be "
                                 "charged."))


def change(recurring: RecurringDonation, amount: Money, frequency: Frequency, request_token: str) -> None:
    """New amount or frequency from the next payment on; the current period is not prorated."""
    _require_continuing(recurring)
    if frequency is Frequency.ONE_OFF:
        raise NotAllowed(gettext("Choose monthly or yearly."))
    if (amount.amount, amount.currency, frequency) == (recurring.amount, recurring.currency, recurring.frequency):
        return
    subscription = get_gateway().change_subscription(
        recurring.stripe_subscription_id, amount=amount.amount, currency=amount.currency,
        interval=frequency.interval, idempotency_key=f"donations-change-{recurring.id}-{request_token}",
    )
    ledger.apply_subscription(subscription, None)


def pause(recurring: RecurringDonation, months: int) -> None:
    """Skip the next ``months`` monthly payments (a yearly gift: pause for ``months`` calendar months);
    the gift resumes by itself afterwards."""
    _require_continuing(recurring)
    if months not in PAUSE_MONTHS:
        raise NotAllowed(gettext("Pause for 1, 2 or 3 months."))
    next_payment = recurring.current_period_end
    if recurring.frequency is Frequency.MONTHLY and next_payment and next_payment > now_utc():
        # Resume just after the last skipped payment date, whatever the months' lengths.
        resumes = add_months(next_payment, months - 1) + timedelta(days=1)
    else:
        resumes = add_months(now_utc(), months)
    resumes_at = int(resumes.timestamp())
    subscription = get_gateway().pause_subscription(recurring.stripe_subscription_id, resumes_at=resumes_at)
    ledger.apply_subscription(subscription, None)


def resume(recurring: RecurringDonation) -> None:
    _require_continuing(recurring)
    subscription = get_gateway().resume_subscription(recurring.stripe_subscription_id)
    ledger.apply_subscription(subscription, None)


def cancel(recurring: RecurringDonation, at_period_end: bool) -> None:
    """Cancel now, or after the period already paid for; either way a confirmation email follows."""
    _require_open(recurring)
    if at_period_end and recurring.cancel_at_period_end:
        raise NotAllowed(gettext("This gift already ends at the end of the period you paid for."))
    subscription = get_gateway().cancel_subscription(recurring.stripe_subscription_id, at_period_end=at_period_end)
    ledger.apply_subscription(subscription, None)
    emails.queue_recurring_canceled(recurring)


def card_update_url(recurring: RecurringDonation, return_url: str, updated_url: str) -> str:
    """The card page: back to ``return_url`` if the supporter leaves it, to ``updated_url`` once the card is saved.
    A gift that ends at the period's end takes no more payments, so its card matters only while one has failed."""
    if recurring.status is not RecurringStatus.PAST_DUE:
        _require_continuing(recurring)
    _require_open(recurring)
    if not recurring.stripe_customer_id:
        raise NotAllowed(gettext("This gift has no card on file to update."))
    return get_gateway().create_portal_session(recurring.stripe_customer_id, return_url, updated_url)


def withdraw_mailing_consent(supporter: Supporter) -> bool:
    """The supporter no longer wants to hear about our work by email; False when there was no consent.
    From the next supporters export on they are left out; a later gift with the box ticked asks again."""
    if supporter.mailing_consent_at is None:
        return False
    supporter.mailing_consent_at = None
    supporter.mailing_consent_source = None
    privacy.record_consent(supporter, "withdrawn", WITHDRAW_WORDING, "account page")
    return True


def send_manage_link(email: str) -> None:
    """Email a fresh manage link if the address belongs to a supporter; says nothing either way."""
    supporter = db.session.scalars(select(Supporter).where(Supporter.email == ledger.normalise_email(email))).first()
    if supporter is not None:
        emails.queue_manage_link(supporter, secrets.token_hex(8))
