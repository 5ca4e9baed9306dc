"""Scheduled email reports: who gets which report when, the calendar arithmetic of "when", and the edits.

Days are plain calendar days in UTC. A working day is Monday to Friday; public holidays are not known here.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select, true

from ..checkout.validation import clean_email
from ..extensions import db
from ..staff.auth import audit
from .models import MAX_RECIPIENTS, MAX_WORKING_DAY, ReportKind, ReportSchedule, ScheduleError


# -- calendar ----------------------------------------------------------------------------------------

def is_working_day(day: date) -> bool:
    return day.weekday() < 5


def nth_working_day(year: int, month: int, n: int) -> date:
    """The ``n``-th Monday-to-Friday of the month (1-based): with the 1st on a Saturday, the first is Monday the 3rd."""
    if not 1 <= n <= MAX_WORKING_DAY:
        raise ValueError(f"working day must be between 1 and {MAX_WORKING_DAY}")
    day, seen = date(year, month, 1), 0
    while True:
        if is_working_day(day):
            seen += 1
            if seen == n:
                return day
        day += timedelta(days=1)


def _utc(day: date, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), timezone.utc)


@dataclass(frozen=True)
class Period:
    """One sending of a report: its key in dedupe keys, when it is due, and the span of time it covers."""

    key: str  #: ``2026-10`` (monthly, the month it is sent in) or ``2026-W42`` (weekly, ISO week)
    due: datetime
    start: datetime  #: covered span, start included
    end: datetime  #: covered span, end excluded

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()


def previous_month(day: date) -> tuple[datetime, datetime]:
    """The calendar month before ``day``'s, as [first midnight, next first midnight) in UTC."""
    first = day.replace(day=1)
    return _utc((first - timedelta(days=1)).replace(day=1)), _utc(first)


def period_for(schedule: ReportSchedule, now: datetime) -> Period:
    """This month's (monthly) or this ISO week's (weekly) sending, whether or not it is due yet.

    The covered span follows from the due day, not from the moment of sending: a late run covers the same days.
    """
    today = now.astimezone(timezone.utc).date()
    if schedule.kind is ReportKind.MONTHLY_ACCOUNTING:
        send_day = nth_working_day(today.year, today.month, schedule.working_day)
        start, end = previous_month(today)
        return Period(f"{today:%Y-%m}", _utc(send_day, schedule.send_hour), start, end)
    monday = today - timedelta(days=today.weekday())
    send_day = monday + timedelta(days=schedule.weekday)
    year, week, _ = send_day.isocalendar()
    return Period(f"{year}-W{week:02d}", _utc(send_day, schedule.send_hour),
                  _utc(send_day - timedelta(days=7)), _utc(send_day))


def send_now_period(kind: ReportKind, now: datetime) -> Period:
    """What "send now" covers: the previous calendar month, or the 7 days before today (UTC)."""
    today = now.astimezone(timezone.utc).date()
    if kind is ReportKind.MONTHLY_ACCOUNTING:
        start, end = previous_month(today)
        return Period(f"{today:%Y-%m}", now, start, end)
    return Period(f"{today:%Y-%m-%d}", now, _utc(today - timedelta(days=7)), _utc(today))


def dedupe_key(kind: ReportKind, period_key: str, recipient: str, *, manual: str | None = None) -> str:
    """``report:monthly_accounting:2026-10:ada@example.org``; a manual sending adds ``now:<token>``.

    The outbox's keys hold 200 characters: a very long address is replaced by its digest, which is as unique.
    """
    who = recipient if len(recipient) <= 120 else "sha256:" + hashlib.sha256(recipient.encode()).hexdigest()[:40]
    middle = f"{period_key}:now:{manual}" if manual else period_key
    return f"report:{kind.value}:{middle}:{who}"


# -- reading and editing -----------------------------------------------------------------------------

def schedules() -> list[ReportSchedule]:
    return list(db.session.scalars(select(ReportSchedule).order_by(ReportSchedule.kind)))


def enabled_schedules() -> list[ReportSchedule]:
    return list(db.session.scalars(select(ReportSchedule).where(ReportSchedule.enabled == true())
                                   .order_by(ReportSchedule.kind)))


def get_schedule(kind: ReportKind) -> ReportSchedule:
    """The row for ``kind``; the migration seeds one per kind, so a missing row is a broken install."""
    return db.session.scalars(select(ReportSchedule).where(ReportSchedule.kind == kind)).one()


_SEPARATORS = re.compile(r"[\s,;]+")


def parse_recipients(text: str) -> tuple[list[str], list[str]]:
    """Addresses separated by commas, semicolons or new lines → (clean unique addresses, error messages)."""
    addresses, problems = [], []
    for part in _SEPARATORS.split(text or ""):
        if not part:
            continue
        try:
            address = clean_email(part)
        except ValueError:
            problems.append(f"“{part[:80]}” is not a valid email address.")
            continue
        if address not in addresses:
            addresses.append(address)
    if len(addresses) > MAX_RECIPIENTS:
        problems.append(f"At most {MAX_RECIPIENTS} recipients.")
    return addresses, problems


def update_schedule(schedule: ReportSchedule, *, enabled: bool, recipients: list[str], send_hour: int,
                    working_day: int | None = None, weekday: int | None = None) -> None:
    """Save a report's settings (already validated by the form) and audit what changed."""
    before = {"enabled": schedule.enabled, "recipients": list(schedule.recipients), "send_hour": schedule.send_hour,
              "working_day": schedule.working_day, "weekday": schedule.weekday}
    schedule.enabled, schedule.recipients, schedule.send_hour = enabled, list(recipients), send_hour
    if working_day is not None:
        schedule.working_day = working_day
    if weekday is not None:
        schedule.weekday = weekday
    after = {"enabled": schedule.enabled, "recipients": list(schedule.recipients), "send_hour": schedule.send_hour,
             "working_day": schedule.working_day, "weekday": schedule.weekday}
    changed = {k: {"from": before[k], "to": after[k]} for k in before if before[k] != after[k]}
    if changed:
        audit("report_schedule.edit", "report_schedule", schedule.kind.value, changed=changed)
