"""Staff forms; every one carries a CSRF token."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

from babel.core import Locale, UnknownLocaleError
from flask import current_app
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from ..campaigns.models import Allocation, GoalPeriod, Placement
from ..checkout.validation import clean_email
from ..forms import Form
from ..ledger.models import Frequency
from ..money import Money, MoneyError
from .auth import password_problem
from .models import Role


class LoginForm(Form):
    email = StringField("Email", validators=[InputRequired()], render_kw={"autocomplete": "username"})
    password = PasswordField("Password", validators=[InputRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


class RefundForm(Form):
    amount = StringField("Amount to refund", validators=[InputRequired("Enter an amount.")],
                         render_kw={"inputmode": "decimal"})
    #: Unique per rendered form: the refund's idempotency key, so a double-submit refunds once.
    token = HiddenField(default=lambda: str(uuid.uuid4()))
    #: "1" on the confirmation page's form: only then is the refund sent; the first post only asks to confirm.
    confirm = HiddenField()

    def validate_token(self, field):
        try:
            field.data = str(uuid.UUID(field.data or ""))
        except ValueError:
            raise ValidationError("This form has expired; reload the page.") from None


class ActionForm(Form):
    """A button with nothing but the CSRF token."""


class CampaignForm(Form):
    headline = StringField("Headline", validators=[InputRequired(), Length(max=200)])
    body = TextAreaField("Body", validators=[InputRequired(), Length(max=2000)],
                         description="{publication} is replaced by the publication's name.")
    button_label = StringField("Button", validators=[InputRequired(), Length(max=80)])
    thank_you = TextAreaField("Thank-you (shown instead of the ask to readers who gave)",
                              validators=[InputRequired(), Length(max=500)])
    default_frequency = RadioField("Default frequency", choices=[SelectChoice(f.value, f.label) for f in Frequency])
    #: One text field per frequency and currency, "10, 25, 50" in major units; added in the view.


def parse_locale(text: str) -> str:
    """A Babel locale identifier as Babel spells it (``de``, ``de_CH``); ValueError for anything else."""
    value = (text or "").strip().replace("-", "_")
    if not re.fullmatch(r"[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})*", value):
        raise ValueError(f"{text.strip()[:40]!r} is not a language code such as en, de or de_CH.")
    try:
        return str(Locale.parse(value))
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"{text.strip()[:40]!r} is not a language code such as en, de or de_CH.") from None


def split_list(text: str | None) -> list[str]:
    """Items separated by commas or new lines, trimmed, empty ones dropped, duplicates once."""
    items = [item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()]
    return list(dict.fromkeys(items))


def _parse_utc(text: str | None) -> datetime | None:
    """A ``datetime-local`` value (``2026-12-01T08:00``), read as UTC: the app has no publisher time zone."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError("Enter a date and time such as 2026-12-01T08:00.") from None
    try:
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first day UTC can name
        raise ValidationError("Enter a date and time such as 2026-12-01T08:00.") from None
    return value.replace(tzinfo=timezone.utc, second=0, microsecond=0)


class CampaignCreateForm(Form):
    slug = StringField("Slug (in the embed tag and the donation link)", validators=[
        InputRequired("Enter a slug."), Regexp(r"^[a-z0-9][a-z0-9-]{0,63}$",
                                               message="Use 1 to 64 lower-case letters, digits and dashes.")])
    name = StringField("Name (staff only)", validators=[InputRequired("Enter a name."), Length(max=200)])
    language = StringField("Language of the copy", default="en", validators=[InputRequired("Enter a language.")])

    def validate_language(self, field):
        try:
            field.data = parse_locale(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


PLACEMENTS = [SelectChoice(p.value, p.value) for p in Placement]


class _UniqueIds:
    """Several forms share the campaign and variant pages, with fields of the same names; each form's ids get
    a prefix (field names stay) so that every label names its own field (and no id is on the page twice)."""

    id_prefix = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self:
            if field.id is not False:  # the CSRF token has none (donations.forms)
                field.id = field.label.field_id = f"{self.id_prefix}{field.id}"


class CampaignSettingsForm(_UniqueIds, Form):
    """Where, when and how a campaign shows. Times are UTC (the app has no publisher time zone)."""

    id_prefix = "settings-"

    name = StringField("Name", validators=[InputRequired("Enter a name."), Length(max=200)])
    language = StringField("Language of the copy", validators=[InputRequired("Enter a language.")])
    active = BooleanField("Active")
    starts_at = StringField("Starts (UTC)", render_kw={"type": "datetime-local"})
    ends_at = StringField("Ends (UTC)", render_kw={"type": "datetime-local"})
    priority = IntegerField("Priority (the highest shows where several match)", default=0,
                            validators=[InputRequired("Enter a whole number."),
                                        NumberRange(-1000, 1000, "Use a number from -1000 to 1000.")])
    goal_amount = StringField("Goal (major units; empty = no goal)", render_kw={"inputmode": "decimal"})
    goal_currency = SelectField("Goal currency", validate_choice=False)
    goal_period = SelectField("Goal period", choices=[SelectChoice(p.value, p.value) for p in GoalPeriod])
    sections = TextAreaField("Sections (comma or line separated; empty = all)")
    url_patterns = TextAreaField("URL patterns such as /politics/* (comma or line separated; empty = all)")
    languages = TextAreaField("Page languages such as de, fr (comma or line separated; empty = all)")
    hide_from_supporters = BooleanField("Hide from readers who gave")
    placement = SelectField("Placement", choices=PLACEMENTS)
    after_paragraph = IntegerField("After paragraph (inline; empty = where the tag stands)",
                                   validators=[Optional(), NumberRange(1, 100, "Use a paragraph from 1 to 100.")])
    cap_views = IntegerField("At most … showings", validators=[Optional(), NumberRange(1, 1000,
                                                                                      "Use a number from 1 to 1000.")])
    cap_days = IntegerField("… per days", validators=[Optional(), NumberRange(1, 365, "Use 1 to 365 days.")])
    allocation = SelectField("Split readers", choices=[SelectChoice(a.value, a.value) for a in Allocation])
    allocation_floor = IntegerField("Thompson floor per variant (%)", default=10, validators=[
        InputRequired("Enter a percentage."), NumberRange(0, 50, "Use 0 to 50 percent.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.goal_currency.choices = [SelectChoice(c, c) for c in current_app.config["CURRENCIES"]]
        #: Parsed values, set by validate(): ready for the operation.
        self.values: dict = {}

    def validate_language(self, field):
        try:
            field.data = parse_locale(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_goal_currency(self, field):
        if field.data not in current_app.config["CURRENCIES"]:
            raise ValidationError("Choose one of the currencies readers can give in.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        values: dict = {}
        for name in ("starts_at", "ends_at"):
            try:
                values[name] = _parse_utc(getattr(self, name).data)
            except ValidationError as exc:
                getattr(self, name).errors.append(str(exc))
                ok = False
        if values.get("starts_at") and values.get("ends_at") and values["ends_at"] <= values["starts_at"]:
            self.ends_at.errors.append("The end must come after the start.")
            ok = False
        values["goal_amount"] = None
        if (self.goal_amount.data or "").strip() and not self.goal_currency.errors:
            try:
                goal = Money.from_major(self.goal_amount.data, self.goal_currency.data)
            except MoneyError as exc:
                self.goal_amount.errors.append(str(exc))
                ok = False
            else:
                if goal.amount <= 0:
                    self.goal_amount.errors.append("A goal must be more than zero.")
                    ok = False
                values["goal_amount"] = goal.amount
        values["sections"] = split_list(self.sections.data)
        if any(len(s) > 100 for s in values["sections"]) or len(values["sections"]) > 50:
            self.sections.errors.append("Up to 50 sections of up to 100 characters each.")
            ok = False
        values["url_patterns"] = split_list(self.url_patterns.data)
        bad = [p for p in values["url_patterns"] if not p.startswith("/") or re.search(r"\s", p) or len(p) > 300]
        if bad or len(values["url_patterns"]) > 50:
            self.url_patterns.errors.append(
                f"Each pattern is a path starting with / and without spaces, such as /politics/*; "
                f"not {bad[0][:60]!r}." if bad else "Up to 50 patterns.")
            ok = False
        languages = []
        for item in split_list(self.languages.data):
            try:
                languages.append(parse_locale(item))
            except ValueError as exc:
                self.languages.errors.append(str(exc))
                ok = False
        values["languages"] = list(dict.fromkeys(languages))
        if (self.cap_views.data is None) != (self.cap_days.data is None) and not (
                self.cap_views.errors or self.cap_days.errors):
            self.cap_views.errors.append("Give both the number of showings and the days, or neither.")
            ok = False
        self.values = values
        return ok


VARIANT_KEY = r"^[a-z0-9-]{1,16}$"


class VariantForm(_UniqueIds, Form):
    """A variant's settings; empty copy, presets, frequency or placement are the campaign's own.
    The preset fields (one per frequency and currency) are added in the view, as on the campaign's form."""

    id_prefix = "variant-"

    key = StringField("Key (in the counts and the donation link)", validators=[
        InputRequired("Enter a key."), Regexp(VARIANT_KEY, message="Use 1 to 16 lower-case letters, digits and dashes.")])
    name = StringField("Name", validators=[InputRequired("Enter a name."), Length(max=100)])
    weight = IntegerField("Weight (split by weight)", default=1, validators=[
        InputRequired("Enter a whole number."), NumberRange(0, 1000, "Use a weight from 0 to 1000.")])
    active = BooleanField("Active", default=True)
    headline = StringField("Headline", validators=[Length(max=200)])
    body = TextAreaField("Body", validators=[Length(max=2000)])
    button_label = StringField("Button", validators=[Length(max=80)])
    default_frequency = SelectField("Default frequency", default="", choices=[
        SelectChoice("", "(the campaign's)"), *[SelectChoice(f.value, f.label) for f in Frequency]])
    placement = SelectField("Placement", default="", choices=[SelectChoice("", "(the campaign's)"), *PLACEMENTS])
    after_paragraph = IntegerField("After paragraph (empty = the campaign's)",
                                   validators=[Optional(), NumberRange(1, 100, "Use a paragraph from 1 to 100.")])


class TranslationForm(_UniqueIds, Form):
    """A variant's copy in one more language; empty fields fall back (see CampaignTranslation)."""

    id_prefix = "translation-"

    locale = StringField("Language", validators=[InputRequired("Enter a language.")])
    headline = StringField("Headline", validators=[Length(max=200)])
    body = TextAreaField("Body", validators=[Length(max=2000)])
    button_label = StringField("Button", validators=[Length(max=80)])
    thank_you = TextAreaField("Thank-you", validators=[Length(max=500)])

    def validate_locale(self, field):
        try:
            field.data = parse_locale(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class UserForm(Form):
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


class UserChangeForm(Form):
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value) for r in Role])
    active = SelectField("Status", choices=[SelectChoice("1", "active"), SelectChoice("0", "deactivated")])


class ExportForm(Form):
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
