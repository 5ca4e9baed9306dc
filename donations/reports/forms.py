"""Forms of the report schedule page; every one carries a CSRF token."""
from __future__ import annotations

import uuid

from wtforms import BooleanField, HiddenField, IntegerField, SelectChoice, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, StopValidation, ValidationError

from ..forms import Form
from .models import MAX_WORKING_DAY, WEEKDAYS, ReportKind
from .schedule import parse_recipients


class WholeNumber:
    """Replaces WTForms' "Not a valid integer value." by the field's own message, so that it is said once."""

    def __init__(self, message: str):
        self.message = message

    def __call__(self, form, field):
        if field.process_errors:
            field.errors[:] = []
            raise StopValidation(self.message)


HOUR = "Enter an hour from 0 to 23."
WORKING_DAY = f"Enter a working day from 1 to {MAX_WORKING_DAY}."


class ScheduleForm(Form):
    """What both reports share: on or off, to whom, from which hour (UTC)."""

    enabled = BooleanField("Send this report")
    recipients = TextAreaField("Recipients", validators=[Length(max=5000)],
                               description="Email addresses, separated by commas or new lines.")
    send_hour = IntegerField("Hour (UTC)",
                             validators=[InputRequired(HOUR), WholeNumber(HOUR), NumberRange(0, 23, HOUR)])

    #: The clean addresses, set once the form validates.
    addresses: list[str]

    def validate_recipients(self, field):
        self.addresses, problems = parse_recipients(field.data or "")
        if problems:
            raise ValidationError(" ".join(problems))
        if self.enabled.data and not self.addresses:
            raise ValidationError("Add at least one recipient, or stop sending this report.")


class MonthlyScheduleForm(ScheduleForm):
    working_day = IntegerField("Working day of the month", validators=[
        InputRequired(WORKING_DAY), WholeNumber(WORKING_DAY), NumberRange(1, MAX_WORKING_DAY, WORKING_DAY)],
        description="1 is the first Monday-to-Friday of the month. Public holidays are not taken into account.")


class WeeklyScheduleForm(ScheduleForm):
    weekday = SelectField("Weekday", coerce=int,
                          choices=[SelectChoice(i, name) for i, name in enumerate(WEEKDAYS)])


FORMS: dict[ReportKind, type[ScheduleForm]] = {
    ReportKind.MONTHLY_ACCOUNTING: MonthlyScheduleForm,
    ReportKind.WEEKLY_SUPPORTERS: WeeklyScheduleForm,
}


class SendNowForm(Form):
    #: Unique per rendered button: part of the emails' dedupe keys, so a double-submit sends once.
    token = HiddenField(default=lambda: uuid.uuid4().hex, validators=[InputRequired()])

    def validate_token(self, field):
        try:
            field.data = uuid.UUID(field.data or "").hex
        except ValueError:
            raise ValidationError("This form has expired; reload the page.") from None
