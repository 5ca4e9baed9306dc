"""Dates for tests that make something "now" and then check the day, month or year it was given.

Midnight UTC may pass between making a gift and reading the date again (on a slow CI machine, or between
collecting the tests and running them), so a test never reads "today" once, apart from what it checks:
it reads the day before and after the action and accepts either, or it asks for a range that holds both.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Iterator


def utc_today() -> date:
    """Today in UTC, read now."""
    return datetime.now(timezone.utc).date()


def recent_days() -> tuple[str, str]:
    """Yesterday and today (UTC, ISO), read now: a range that holds whatever the test made a moment ago,
    even when midnight passed since."""
    today = utc_today()
    return (today - timedelta(days=1)).isoformat(), today.isoformat()


@contextmanager
def days_around() -> Iterator[list[date]]:
    """The UTC days on which the block ran: ``with days_around() as days: ...`` leaves [day before, day after]
    (the same day twice, nearly always); a test accepts a date, month or year taken from either."""
    days = [utc_today()]
    yield days
    days.append(utc_today())


class _RecentDay:
    """Equal to today (UTC, read when compared), and to yesterday only in the first minutes after midnight: the
    day of something the test stamped a moment ago, when midnight may have passed between stamping it and
    checking it. The rest of the day a stamp one day early (a time-zone slip) still fails the test."""

    GRACE = timedelta(minutes=5)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, date) or isinstance(other, datetime):
            return NotImplemented
        now = datetime.now(timezone.utc)
        return other in {now.date(), (now - self.GRACE).date()}

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "<today (UTC; or yesterday just after midnight)>"


#: Compare a stamped day with it: ``assert rows == [(RECENT_DAY, ...)]``.
RECENT_DAY = _RecentDay()
