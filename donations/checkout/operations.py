"""Starting a donation: validate what the reader asked for, record an attempt, open a checkout."""
from __future__ import annotations

import uuid
from datetime import timedelta
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select, update

from ..campaigns import operations as campaigns
from ..campaigns.articles import article_id_for
from ..campaigns.models import Campaign, CampaignVariant
from ..db import insert_ignore, now_utc
from ..extensions import db
from ..i18n import N_
from ..ledger.models import Donation, Frequency, RecurringDonation
from ..money import (Money, MoneyError, UnknownCurrency, check_amount, fee_to_cover, minimum_charge,
                     normalise_currency)
from ..payments.gateway import CheckoutRequest, GatewayError, get_gateway
from ..security.ip import client_ip_hash
from ..security.redirects import safe_next
from .models import AttemptStatus, CheckoutAttempt
from .validation import clean_article_url, clean_email, clean_name

@dataclass(frozen=True)
class DonationRequest:
    campaign: Campaign
    gift: Money  #: what the reader chose, before any fee they cover
    frequency: Frequency
    email: str
    name: str | None
    article_url: str | None
    cover_fees: bool
    locale: str = "en"
    #: The reader agreed to hear about our work by email: where and in which words; None = not asked or not ticked.
    mailing_consent_source: str | None = None
    #: The A/B variant of the ask the reader answered (one of ``campaign``'s, active); None = not known.
    variant: CampaignVariant | None = None
    #: Where the checkout sends the reader after paying or cancelling (API only); None = our own pages.
    success_url: str | None = None
    cancel_url: str | None = None

    @property
    def covered_fee(self) -> Money:
        return fee_to_cover(self.gift, current_app.config) if self.cover_fees else Money(0, self.gift.currency)

    @property
    def total(self) -> Money:
        return self.gift + self.covered_fee


def clean_currency(value: object) -> str:
    currency = normalise_currency(value)
    accepted = current_app.config["CURRENCIES"]
    if currency not in accepted:
        raise UnknownCurrency(gettext("We accept %(currencies)s.", currencies=", ".join(accepted)))
    return currency


def clean_frequency(value: object) -> Frequency:
    try:
        frequency = Frequency(value)
    except ValueError:
        raise ValueError(gettext("Choose one_off, monthly or yearly.")) from None
    return frequency


API_FIELDS = {"campaign", "amount", "currency", "frequency", "email", "name", "article_url", "cover_fees",
              "mailing_consent", "variant", "captcha_token",
              "success_url", "cancel_url"}
#: What a supporter agreed to, in the words they saw; kept with their consent. Marked for the catalogues: the
#: form shows it (and form_consent_source() records it) in the reader's language.
MAILING_CONSENT_TEXT = N_("Keep me informed about our work by email")
FORM_CONSENT_SOURCE = f"donation form: {MAILING_CONSENT_TEXT}"


def form_consent_source() -> str:
    """Where and in which words the reader agreed: the words the form showed them, in their language."""
    return f"donation form: {gettext(MAILING_CONSENT_TEXT)}"
API_CONSENT_SOURCE = "API: mailing_consent = true"
API_REQUIRED = ("campaign", "amount", "currency", "frequency", "email")


def parse_api_request(payload: Any, locale: str) -> tuple[DonationRequest | None, dict[str, str]]:
    """Check a JSON body for POST /api/v1/checkout-sessions; returns the request or field errors."""
    if not isinstance(payload, dict):
        return None, {"body": "Send a JSON object."}
    errors: dict[str, str] = {}
    for key in payload:
        if key not in API_FIELDS:
            errors[str(key)[:100]] = "Unknown field."
    for key in API_REQUIRED:
        if payload.get(key) is None:
            errors[key] = "This field is required."
    values: dict[str, Any] = {}

    def check(field: str, fn):
        if field in payload and payload[field] is not None and field not in errors:
            if isinstance(payload[field], str) and "\x00" in payload[field]:
                errors[field] = "Contains a character that is not allowed (NUL)."
                return
            try:
                values[field] = fn(payload[field])
            except ValueError as exc:
                errors[field] = str(exc)

    check("campaign", _campaign)
    if "campaign" in values:
        check("variant", lambda v: _api_variant(values["campaign"], v))
    check("currency", clean_currency)
    check("frequency", clean_frequency)
    check("email", clean_email)
    check("name", clean_name)
    check("article_url", clean_article_url)
    check("cover_fees", _boolean)
    check("mailing_consent", _boolean)
    check("captcha_token", _captcha_token)
    check("success_url", _return_url)
    check("cancel_url", _return_url)
    if "currency" in values:
        check("amount", lambda v: _api_amount(v, values["currency"]))
    if errors:
        return None, errors
    return DonationRequest(
        campaign=values["campaign"],
        gift=values["amount"],
        frequency=values["frequency"],
        email=values["email"],
        name=values.get("name"),
        article_url=values.get("article_url"),
        cover_fees=values.get("cover_fees", False),
        locale=locale,
        mailing_consent_source=API_CONSENT_SOURCE if values.get("mailing_consent") else None,
        variant=values.get("variant"),
        success_url=values.get("success_url"),
        cancel_url=values.get("cancel_url"),
    ), {}


def _campaign(value: object) -> Campaign:
    campaign = campaigns.get_active(value) if isinstance(value, str) else None
    if campaign is None:
        raise ValueError(gettext("Unknown campaign."))
    return campaign


def active_variant(campaign: Campaign, key: object) -> CampaignVariant | None:
    """The campaign's active variant with this key; None for no key, an unknown or a paused one."""
    variant = campaign.variant(key) if isinstance(key, str) else None
    return variant if variant is not None and variant.active else None


def _api_variant(campaign: Campaign, key: object) -> CampaignVariant | None:
    """A key the campaign never had is the caller's mistake; a paused variant's gift goes on unattributed,
    as on the form (the reader saw the ask before the staff paused it)."""
    if not isinstance(key, str) or campaign.variant(key) is None:
        raise ValueError(gettext("Unknown variant."))
    return active_variant(campaign, key)


def _captcha_token(value: object) -> str:
    """Only its shape here; the provider verifies it when a CAPTCHA is required (security/captcha.py)."""
    if not isinstance(value, str) or len(value) > 4096:
        raise ValueError(gettext("Must be the CAPTCHA widget's response, as text."))
    return value


def _return_url(value: object) -> str:
    """A page of the publication's own sites (ALLOWED_ORIGINS) or ours, as an absolute URL; never elsewhere."""
    config = current_app.config
    origins = [*config["ALLOWED_ORIGINS"], config["PUBLIC_URL"]]
    if not isinstance(value, str) or value.startswith("/") or safe_next(value, origins) is None:
        raise ValueError(f"Must be an absolute URL on {', '.join(origins)}.")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(gettext("Must be true or false."))
    return value


def _api_amount(value: object, currency: str) -> Money:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(gettext("Amount must be a whole number of minor units, such as 2500 for 25.00."))
    if abs(value) > 10**15:
        raise ValueError(gettext("That amount is too large."))
    money = Money(value, currency)
    check_gift(money)
    return money


def check_gift(money: Money) -> None:
    """Currency accepted, and within our minimum (MIN_AMOUNTS, never below Stripe's) and our maximum;
    raises ValueError (MoneyError). Card testers try the smallest amounts, so the minimum is a defence too."""
    if money.amount <= 0:
        raise MoneyError(gettext("Amount must be more than zero."))
    check_amount(money, current_app.config)
    low = minimum_gift(money.currency)
    if money.amount < low.amount:
        raise MoneyError(gettext("The smallest gift is %(amount)s.", amount=low.format(_locale())))


def minimum_gift(currency: str) -> Money:
    """The smallest gift in ``currency``: MIN_AMOUNTS (major units) where named, and never below Stripe's minimum."""
    stripe_minimum = minimum_charge(currency)
    configured = current_app.config["MIN_AMOUNTS"].get(stripe_minimum.currency)
    if configured is None:
        return stripe_minimum
    ours = Money.from_major(configured, stripe_minimum.currency)
    return ours if ours.amount > stripe_minimum.amount else stripe_minimum


def _locale() -> str:
    from flask import has_request_context

    from ..web import request_locale

    return request_locale() if has_request_context() else "en"


def start_donation(request: DonationRequest, attempt_id: str | None = None) -> CheckoutAttempt:
    """Record the attempt and open a checkout session for it; returns the attempt with its checkout URL.

    The attempt id is the gateway's idempotency key, so the same form submitted twice
    (a double click) reuses one attempt and one session. When the provider answered a try with
    an error, the next try gets a key of its own: Stripe replays a saved error for the same key.
    """
    check_amount(request.total, current_app.config)
    attempt = _claim_attempt(attempt_id, request) if attempt_id else None
    if attempt is None:  # no key, or the reader went back and changed the form: a new gift, a new key
        attempt = _claim_attempt(str(uuid.uuid4()), request)
    if attempt.checkout_url and _reusable(attempt):
        return attempt
    if attempt.checkout_url:  # paid, expired or a day old: the same form again is a new gift
        attempt = _claim_attempt(str(uuid.uuid4()), request)
    public = current_app.config["PUBLIC_URL"]
    try:
        session = get_gateway().create_checkout_session(CheckoutRequest(
            attempt_id=attempt.id,
            attempt_try=attempt.gateway_tries,
            amount=attempt.amount,
            currency=attempt.currency,
            frequency=attempt.frequency.value,
            email=attempt.email,
            description=_description(request.frequency, current_app.config["PUBLICATION_NAME"]),
            locale=attempt.locale,
            success_url=request.success_url or f"{public}/thanks?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=request.cancel_url or f"{public}/donate?{urlencode({'attempt': attempt.id})}",
            metadata={
                "attempt_id": attempt.id,
                "campaign": request.campaign.slug,
                "article_url": (attempt.article_url or "")[:500],
            },
        ))
    except GatewayError as exc:
        if exc.answered:
            attempt.gateway_tries += 1  # the caller commits this, so that a retry uses a fresh key
            db.session.flush()
        raise
    attempt.checkout_session_id = session.id
    attempt.checkout_url = session.url
    db.session.flush()
    return attempt


def _description(frequency: Frequency, publication: str) -> str:
    """What the checkout page says is being paid for, in the reader's language."""
    match frequency:
        case Frequency.MONTHLY:
            return gettext("Monthly donation to %(publication)s", publication=publication)
        case Frequency.YEARLY:
            return gettext("Yearly donation to %(publication)s", publication=publication)
    return gettext("Donation to %(publication)s", publication=publication)


def _reusable(attempt: CheckoutAttempt) -> bool:
    """A checkout page can be sent to again while it is open and younger than Stripe's 24 hours."""
    return attempt.status is AttemptStatus.OPEN and attempt.created_at > now_utc() - timedelta(hours=23)


def _claim_attempt(attempt_id: str, request: DonationRequest) -> CheckoutAttempt | None:
    """Insert the attempt unless it exists, then read it as committed; None if it exists for another gift.

    One insert-then-read (rather than read, then insert) lets PostgreSQL make a concurrent retry
    wait for the first request and then see its attempt and checkout URL.
    """
    insert_ignore(db.session, CheckoutAttempt, {
        "id": attempt_id,
        "campaign_id": request.campaign.id,
        "email": request.email,
        "name": request.name,
        "amount": request.total.amount,
        "covered_fee": request.covered_fee.amount,
        "currency": request.total.currency,
        "frequency": request.frequency,
        "article_url": request.article_url,
        "locale": request.locale,
        "mailing_consent_source": request.mailing_consent_source,
        "variant_id": request.variant.id if request.variant else None,
        "gateway": get_gateway().name,
        "status": AttemptStatus.OPEN,
        "ip_hash": client_ip_hash(),
    }, ["id"])
    attempt = db.session.get(CheckoutAttempt, attempt_id, populate_existing=True)
    if not _same_request(attempt, request):
        return None
    if attempt.article_id is None and request.article_url:
        # After the attempt is claimed, so that a concurrent retry waits on the attempt (and then finds this
        # one) rather than on the article's row. The article exists from the first gift it brought, even
        # before the embed counted a view of it.
        attempt.article_id = article_id_for(request.article_url)
        db.session.flush()
    return attempt


def _same_request(attempt: CheckoutAttempt, request: DonationRequest) -> bool:
    # A changed consent tick is a new attempt too, so the consent booked is the one the reader last gave.
    return (attempt.campaign_id, attempt.amount, attempt.currency, attempt.frequency, attempt.email,
            attempt.article_url, attempt.mailing_consent_source, attempt.variant_id) == (
        request.campaign.id, request.total.amount, request.total.currency, request.frequency, request.email,
        request.article_url, request.mailing_consent_source, request.variant.id if request.variant else None)


def attempt_by_session(session_id: str) -> CheckoutAttempt | None:
    if not isinstance(session_id, str) or len(session_id) > 255:
        return None
    return db.session.scalars(
        select(CheckoutAttempt).where(CheckoutAttempt.checkout_session_id == session_id)
    ).one_or_none()


def first_donation(attempt: CheckoutAttempt) -> Donation | None:
    """The payment an attempt led to: its donation, or the first payment of the recurring gift it started."""
    donation = db.session.scalars(select(Donation).where(Donation.attempt_id == attempt.id)).one_or_none()
    if donation is None and attempt.frequency is not Frequency.ONE_OFF:
        donation = db.session.scalars(
            select(Donation).join(RecurringDonation, Donation.recurring_donation_id == RecurringDonation.id)
            .where(RecurringDonation.attempt_id == attempt.id).order_by(Donation.id).limit(1)
        ).one_or_none()
    return donation


def expire_attempt(session: dict[str, Any]) -> str:
    """A Checkout Session expired unpaid: the attempt is closed; no donation exists for it."""
    attempt_id = (session.get("metadata") or {}).get("attempt_id")
    attempt = db.session.get(CheckoutAttempt, attempt_id) if attempt_id else None
    if attempt is None:
        return "ignored: not ours"
    if attempt.status is AttemptStatus.OPEN:
        attempt.status = AttemptStatus.EXPIRED
        return f"attempt {attempt.id} expired"
    return f"attempt {attempt.id} already {attempt.status.value}"


def record_decline(intent: dict[str, Any]) -> str:
    """A card was declined on an attempt's checkout page: count it (attack mode watches the share declined).

    The attempt is found by the ``attempt_id`` the gateway puts on the PaymentIntent's metadata (one-off
    gifts; the sandbox does the same for every gift). Each event is stored once, so a redelivery counts nothing.
    """
    attempt_id = (intent.get("metadata") or {}).get("attempt_id")
    attempt = db.session.get(CheckoutAttempt, attempt_id) if isinstance(attempt_id, str) else None
    if attempt is None:
        return "ignored: not ours"
    db.session.execute(update(CheckoutAttempt).where(CheckoutAttempt.id == attempt.id)
                       .values(declines=CheckoutAttempt.declines + 1))
    return f"attempt {attempt.id}: card declined"
