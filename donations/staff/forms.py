"""Staff forms; every one carries a CSRF token."""
from __future__ import annotations

import uuid

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, ValidationError

from ..checkout.validation import clean_email
from ..ledger.models import Frequency
from .auth import password_problem
from .models import Role


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[InputRequired()], render_kw={"autocomplete": "username"})
    password = PasswordField("Password", validators=[InputRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


class RefundForm(FlaskForm):
    amount = StringField("Amount to refund", validators=[InputRequired("Enter an amount.")],
                         render_kw={"inputmode": "decimal"})
    #: Unique per rendered form: the refund's idempotency key, so a double-submit refunds once.
    token = HiddenField(default=lambda: str(uuid.uuid4()))

    def validate_token(self, field):
        try:
            field.data = str(uuid.UUID(field.data or ""))
        except ValueError:
            raise ValidationError("This form has expired; reload the page.") from None


class ActionForm(FlaskForm):
    """A button with nothing but the CSRF token."""


class CampaignForm(FlaskForm):
    headline = StringField("Headline", validators=[InputRequired(), Length(max=200)])
    body = TextAreaField("Body", validators=[InputRequired(), Length(max=2000)],
                         description="{publication} is replaced by the publication's name.")
    button_label = StringField("Button", validators=[InputRequired(), Length(max=80)])
    thank_you = TextAreaField("Thank-you (shown instead of the ask to readers who gave)",
                              validators=[InputRequired(), Length(max=500)])
    default_frequency = RadioField("Default frequency", choices=[SelectChoice(f.value, f.label) for f in Frequency])
    #: One text field per frequency and currency, "10, 25, 50" in major units; added in the view.


class UserForm(FlaskForm):
    email = StringField("Email", validators=[InputRequired()])
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value) for r in Role])
    password = PasswordField("Initial password", validators=[InputRequired()])

    def validate_email(self, field):
        try:
            field.data = clean_email(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_password(self, field):
        problem = password_problem(field.data or "")
        if problem:
            raise ValidationError(problem)


class UserChangeForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value) for r in Role])
    active = SelectField("Status", choices=[SelectChoice("1", "active"), SelectChoice("0", "deactivated")])


class ExportForm(FlaskForm):
    """/staff/reports: which export, for which range, in which format. The range is checked by
    donations.reports.operations.parse_export_request, the same rules as the command line's."""

    kind = StringField("Export")
    start = StringField("From", render_kw={"type": "date"})
    end = StringField("To", render_kw={"type": "date"})
    fiscal_year = StringField("or fiscal year", render_kw={"inputmode": "numeric", "placeholder": "2026"})
    payout = StringField("or payout", render_kw={"placeholder": "po_…"})
    format = SelectField("Format", choices=[SelectChoice("csv", "CSV"), SelectChoice("xlsx", "XLSX")],
                         validate_choice=False)
    bom = BooleanField("CSV for Excel (byte order mark)")
