"""Forms of the supporter's account pages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectChoice, StringField
from wtforms.validators import InputRequired, ValidationError

from ..checkout.validation import clean_email
from ..ledger.models import Frequency
from .operations import PAUSE_MONTHS


class RequestLinkForm(FlaskForm):
    email = StringField("Your email address", render_kw={"type": "email", "autocomplete": "email"})

    def validate_email(self, field):
        try:
            field.data = clean_email(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ChangeForm(FlaskForm):
    amount = StringField("Amount", validators=[InputRequired("Enter an amount.")], render_kw={"inputmode": "decimal"})
    frequency = RadioField("How often", choices=[SelectChoice(f.value, f.label) for f in Frequency
                                                 if f is not Frequency.ONE_OFF])
    #: Unique per rendered form: the idempotency key of the change at Stripe.
    token = HiddenField()


class PauseForm(FlaskForm):
    months = RadioField("Pause for", choices=[SelectChoice(str(m), f"{m} month{'s' if m > 1 else ''}")
                                              for m in PAUSE_MONTHS], default="1")


class CancelForm(FlaskForm):
    when = RadioField("Cancel", choices=[SelectChoice("period_end", "At the end of the period already paid for"),
                                         SelectChoice("now", "Now")], default="period_end")


class ActionForm(FlaskForm):
    """A button with nothing but the CSRF token (resume, update card)."""
