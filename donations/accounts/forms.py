"""Forms of the supporter's account pages."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l, ngettext
from wtforms import HiddenField, RadioField, SelectChoice, StringField
from wtforms.validators import InputRequired, ValidationError

from ..checkout.validation import clean_email
from ..forms import Form
from ..ledger.models import Frequency
from .operations import PAUSE_MONTHS


class RequestLinkForm(Form):
    email = StringField(_l("Your email address"), render_kw={"type": "email", "autocomplete": "email"})

    def validate_email(self, field):
        try:
            field.data = clean_email(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ChangeForm(Form):
    amount = StringField(_l("Amount"), validators=[InputRequired(_l("Enter an amount."))], render_kw={"inputmode": "decimal"})
    frequency = RadioField(_l("How often"), choices=[SelectChoice(f.value, f.value) for f in Frequency
                                                     if f is not Frequency.ONE_OFF])
    #: Unique per rendered form: the idempotency key of the change at Stripe.
    token = HiddenField()


class PauseForm(Form):
    months = RadioField(_l("Pause for"), choices=[], default="1")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.months.choices = [SelectChoice(str(m), ngettext("%(num)s month", "%(num)s months", m))
                               for m in PAUSE_MONTHS]


class CancelForm(Form):
    when = RadioField(_l("Cancel"), choices=[SelectChoice("period_end", _l("At the end of the period already paid for")),
                                             SelectChoice("now", _l("Now"))], default="period_end")


class ActionForm(Form):
    """A button with nothing but the CSRF token (resume, update card)."""
