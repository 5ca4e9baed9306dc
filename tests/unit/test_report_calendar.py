"""When the scheduled reports are due, and which days each covers: working days are Monday to Friday (UTC)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from donations.reports.schedule import (
    ReportKind,
    ReportSchedule,
    dedupe_key,
    nth_working_day,
    parse_recipients,
    period_for,
    send_now_period,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def monthly(working_day: int = 1, send_hour: int = 7) -> ReportSchedule:
    return ReportSchedule(kind=ReportKind.MONTHLY_ACCOUNTING, working_day=working_day, weekday=0, send_hour=send_hour)


def weekly(weekday: int = 0, send_hour: int = 7) -> ReportSchedule:
    return ReportSchedule(kind=ReportKind.WEEKLY_SUPPORTERS, working_day=1, weekday=weekday, send_hour=send_hour)


def test_first_of_the_month_on_a_saturday_makes_monday_the_third_the_first_working_day():
    assert date(2026, 8, 1).strftime("%A") == "Saturday"
    assert nth_working_day(2026, 8, 1) == date(2026, 8, 3)


def test_first_of_the_month_on_a_sunday_makes_monday_the_second_the_first_working_day():
    assert nth_working_day(2026, 11, 1) == date(2026, 11, 2)


def test_a_month_starting_on_a_weekday_has_its_first_working_day_on_the_first():
    assert nth_working_day(2026, 5, 1) == date(2026, 5, 1)  # a Friday


@pytest.mark.parametrize("n, expected", [(2, date(2026, 5, 4)), (3, date(2026, 5, 5)), (5, date(2026, 5, 7)),
                                         (6, date(2026, 5, 8)), (7, date(2026, 5, 11))])
def test_nth_working_day_skips_weekends(n, expected):
    # May 2026: Friday the 1st, then the weekend of the 2nd and 3rd, then a full week, then another weekend.
    assert nth_working_day(2026, 5, n) == expected


def test_the_twentieth_working_day_exists_even_in_a_short_february():
    assert nth_working_day(2026, 2, 20) == date(2026, 2, 27)
    assert nth_working_day(2027, 2, 20) == date(2027, 2, 26)


@pytest.mark.parametrize("n", [0, 21, -1])
def test_working_days_outside_one_to_twenty_are_refused(n):
    with pytest.raises(ValueError):
        nth_working_day(2026, 5, n)


def test_monthly_period_is_due_on_the_nth_working_day_at_the_hour_and_covers_the_previous_month():
    period = period_for(monthly(working_day=1, send_hour=7), utc(2026, 8, 20, 12))

    assert period.key == "2026-08"
    assert period.due == utc(2026, 8, 3, 7)
    assert (period.start, period.end) == (utc(2026, 7, 1), utc(2026, 8, 1))
    assert period.last_day == date(2026, 7, 31)


def test_monthly_period_in_january_covers_december_of_the_year_before():
    period = period_for(monthly(working_day=2, send_hour=6), utc(2027, 1, 1, 0))

    assert period.key == "2027-01"
    assert period.due == utc(2027, 1, 4, 6)  # Friday the 1st, then Monday the 4th
    assert (period.start, period.end) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_weekly_period_is_due_on_the_weekday_of_this_iso_week_and_covers_the_seven_days_before():
    # Thursday 15 October 2026; the report is sent on Wednesdays at 9.
    period = period_for(weekly(weekday=2, send_hour=9), utc(2026, 10, 15, 8))

    assert period.key == "2026-W42"
    assert period.due == utc(2026, 10, 14, 9)
    assert (period.start, period.end) == (utc(2026, 10, 7), utc(2026, 10, 14))


def test_weekly_period_before_this_weeks_weekday_is_this_week_and_not_yet_due():
    now = utc(2026, 10, 12, 23)  # a Monday; the report is sent on Fridays
    period = period_for(weekly(weekday=4), now)

    assert period.key == "2026-W42"
    assert period.due == utc(2026, 10, 16, 7) and now < period.due


def test_iso_week_keys_follow_the_iso_year_at_new_year():
    # Friday 1 January 2027 belongs to ISO week 53 of 2026.
    assert period_for(weekly(weekday=4), utc(2027, 1, 1, 10)).key == "2026-W53"


def test_send_now_covers_the_previous_month_or_the_seven_days_before_today():
    now = utc(2026, 10, 15, 10, 30)
    month = send_now_period(ReportKind.MONTHLY_ACCOUNTING, now)
    week = send_now_period(ReportKind.WEEKLY_SUPPORTERS, now)

    assert (month.start, month.end) == (utc(2026, 9, 1), utc(2026, 10, 1))
    assert (week.start, week.end) == (utc(2026, 10, 8), utc(2026, 10, 15))


def test_dedupe_keys_name_report_period_and_recipient_and_a_manual_sending_differs():
    scheduled = dedupe_key(ReportKind.MONTHLY_ACCOUNTING, "2026-10", "ada@example.org")
    manual = dedupe_key(ReportKind.MONTHLY_ACCOUNTING, "2026-10", "ada@example.org", manual="abc")

    assert scheduled == "report:monthly_accounting:2026-10:ada@example.org"
    assert manual == "report:monthly_accounting:2026-10:now:abc:ada@example.org"


def test_dedupe_keys_of_very_long_addresses_fit_the_outbox_and_stay_distinct():
    first = "a" * 64 + "@" + "b" * 60 + ".example.org"
    second = "c" * 64 + "@" + "b" * 60 + ".example.org"
    keys = {dedupe_key(ReportKind.WEEKLY_SUPPORTERS, "2026-W42", who, manual="f" * 32) for who in (first, second)}

    assert len(keys) == 2
    assert all(len(key) <= 200 for key in keys)


def test_recipients_are_read_from_commas_semicolons_and_lines_cleaned_and_deduplicated():
    addresses, problems = parse_recipients(" Ada@Example.org,\nbob@example.org ; ada@example.org\r\n\n")

    assert addresses == ["ada@example.org", "bob@example.org"]
    assert problems == []


def test_each_bad_recipient_is_named():
    addresses, problems = parse_recipients("ada@example.org, not-an-address, bob@")

    assert addresses == ["ada@example.org"]
    assert problems == ["“not-an-address” is not a valid email address.",
                        "“bob@” is not a valid email address."]
