"""The donation form: the reader's choices, validated field by field with messages beside each field."""
from __future__ import annotations

import uuid

from flask import current_app
from flask_babel import gettext, lazy_gettext as _l
from wtforms import BooleanField, HiddenField, RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import ValidationError

from ..campaigns import operations as campaigns
from ..forms import Form
from ..ledger.models import Frequency
from ..money import Money, MoneyError
from .operations import (
    form_consent_source,
    MAILING_CONSENT_TEXT,
    DonationRequest,
    active_variant,
    check_gift,
    clean_frequency,
)
from .validation import clean_article_url, clean_email, clean_name


def _cleaned(fn):
    """Turn a shared ValueError-raising cleaner into a WTForms validator that stores the clean value."""

    def validator(form, field):
        try:
            field.clean = fn(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    return validator


class DonationForm(Form):
    campaign = HiddenField(default=campaigns.DEFAULT_SLUG)
    #: A preset (in major units) or "other", which reads ``custom_amount``.
    amount = RadioField(_l("Amount"), choices=[], validate_choice=False)
    custom_amount = StringField(_l("Other amount"))
    currency = SelectField(_l("Currency"), choices=[])
    frequency = RadioField(
        _l("How often"),
        choices=[SelectChoice(f.value, f.label) for f in Frequency],
        default=Frequency.ONE_OFF.value,
        validators=[_cleaned(clean_frequency)],
    )
    email = StringField(_l("Email"), validators=[_cleaned(clean_email)], render_kw={"autocomplete": "email", "type": "email"})
    name = StringField(_l("Name (optional)"), validators=[_cleaned(clean_name)], render_kw={"autocomplete": "name"})
    cover_fees = BooleanField(_l("Add the processing fee so that all of my gift arrives"))
    #: Optional and unticked: consent to hear from us must be given, never assumed.
    mailing_consent = BooleanField(_l(MAILING_CONSENT_TEXT), default=False)
    article_url = HiddenField(validators=[_cleaned(clean_article_url)])
    #: The A/B variant of the ask the reader came from. Readers never typed it, so a key that is unknown or
    #: paused is no error: the gift goes on, unattributed to a variant.
    variant = HiddenField()
    #: Unique per rendered form; becomes the attempt id, so a double-submit opens one checkout.
    token = HiddenField(default=lambda: str(uuid.uuid4()))
    #: Honeypot: hidden from people (CSS, aria-hidden, out of the tab order); a bot that fills in every field
    #: gives itself away, and the gift is refused.
    homepage = StringField(_l("Leave this field empty"), render_kw={"tabindex": "-1", "autocomplete": "off"})
    #: The signed moment the form was rendered: a submission faster than FORM_MIN_SECONDS is refused.
    started = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency.choices = [SelectChoice(c) for c in current_app.config["CURRENCIES"]]
        # Built per form, so that the labels are in the page's language.
        self.frequency.choices = [SelectChoice(f.value, f.label) for f in Frequency]
        self.campaign_obj = None
        self.gift: Money | None = None

    def validate_campaign(self, field):
        self.campaign_obj = campaigns.get_active(field.data or "")
        if self.campaign_obj is None:
            raise ValidationError(gettext("Unknown campaign."))

    def validate_amount(self, field):
        typed = (self.custom_amount.data or "").strip()
        preset = field.data not in (None, "", "other")
        raw = field.data if preset else typed
        if not raw:
            raise ValidationError(gettext("Choose or enter an amount."))
        if self.currency.data not in current_app.config["CURRENCIES"]:
            return  # the currency field reports its own error
        try:
            self.gift = Money.from_major(raw, self.currency.data)
            check_gift(self.gift)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from None
        if preset and typed and not self._same_amount(typed):
            # A preset is chosen and another amount typed under "Other amount" (without a script nothing ticks
            # "Other" for the reader): which one they meant is theirs to say, never ours to guess.
            self.gift = None
            raise ValidationError(gettext("You chose one of the amounts and also typed a different one under "
                                          "“Other amount”. Please choose one of them."))

    def _same_amount(self, typed: str) -> bool:
        """Whether the amount typed under "Other amount" is the chosen preset (25 and 25.00 are the same)."""
        try:
            return Money.from_major(typed, self.currency.data) == self.gift
        except MoneyError:
            return False

    def chosen_variant(self):
        """The campaign's active variant named by the link or the form; None when there is none."""
        campaign = self.campaign_obj or campaigns.get_active(self.campaign.data or "")
        return active_variant(campaign, (self.variant.data or "")[:16]) if campaign else None

    def validate_token(self, field):
        try:
            field.data = str(uuid.UUID(field.data or ""))
        except ValueError:
            field.data = str(uuid.uuid4())

    def to_request(self, locale: str) -> DonationRequest:
        return DonationRequest(
            campaign=self.campaign_obj,
            gift=self.gift,
            frequency=self.frequency.clean,
            email=self.email.clean,
            name=self.name.clean,
            article_url=self.article_url.clean,
            cover_fees=bool(self.cover_fees.data),
            locale=locale,
            mailing_consent_source=form_consent_source() if self.mailing_consent.data else None,
            variant=self.chosen_variant(),
        )
