"""Scheduled work of the reports."""
from __future__ import annotations

from datetime import date

from ..db import now_utc
from .statements import due_fiscal_year, issue_statements


def send_annual_statements(today: date | None = None) -> dict[str, int]:
    """Each day from ANNUAL_STATEMENTS_DATE on, issue and email the statements of the fiscal year that
    ended before that date to every supporter who gave in it and has none yet.

    Runs daily so that a day the scheduler was down, a supporter whose statement failed, or a gift
    booked late (a webhook delayed past the date) is caught on a following day; idempotent, so the
    days after that cost one query each.
    """
    fiscal_year = due_fiscal_year(today or now_utc().date())
    if fiscal_year is None:
        return {}
    return issue_statements(fiscal_year)
