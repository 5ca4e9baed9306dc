"""Scheduled work of the reports: emailed reports, annual statements and background exports."""
from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy import select

from ..db import now_utc
from ..extensions import db
from ..mail.models import OutboxEmail
from .operations import claim_next, delete_expired_files, run_export
from .schedule import dedupe_key, enabled_schedules, period_for
from .statements import due_fiscal_year, issue_statements
from .summaries import queue_report

log = logging.getLogger(__name__)


def send_scheduled_reports(now: datetime | None = None) -> dict[str, int]:
    """Queue each enabled report once its period is due, exactly once per period and recipient.

    Runs hourly. A report is due from its send hour on its day (the Nth working day of the month, or the
    weekday of this ISO week) until its period ends, so a run after downtime still sends it. Whether a
    recipient has it already is read from the outbox's dedupe keys (``report:<kind>:<period>:<address>``),
    which the database keeps unique: however often or late this runs, and however many runs overlap, each
    recipient gets one. A run before the due moment sends nothing. Each report is committed on its own: one
    that fails is rolled back and logged, and the other still goes out.
    """
    now = now or now_utc()
    counts = {"queued": 0, "failed": 0}
    for schedule in enabled_schedules():
        kind = schedule.kind
        try:
            period = period_for(schedule, now)
            if now < period.due:
                continue
            keys = {dedupe_key(kind, period.key, r): r for r in schedule.recipients}
            have = set(db.session.scalars(select(OutboxEmail.dedupe_key)
                                          .where(OutboxEmail.dedupe_key.in_(list(keys)))))
            missing = [recipient for key, recipient in keys.items() if key not in have]
            if not missing:
                continue
            done = queue_report(kind, period, missing)
            db.session.commit()
        except Exception:  # one broken report (a query, a template) must not stop the other
            db.session.rollback()
            log.exception("report %s could not be queued", kind.value)
            counts["failed"] += 1
            continue
        counts["queued"] += done["queued"]
        counts["failed"] += done["failed"]
    return counts


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


def run_exports() -> dict[str, int]:
    """Delete export files past their day, then write every queued export, one at a time, each claimed
    atomically so that two scheduler processes never write the same one. Each export's failure is its
    own (run_export records it); a failed clean-up is logged and the exports still run."""
    try:
        deleted = delete_expired_files()
    except Exception:
        db.session.rollback()
        log.exception("expired exports not cleaned up")
        deleted = 0
    counts = {"deleted": deleted, "done": 0, "failed": 0}
    while (job_id := claim_next()) is not None:
        counts["done" if run_export(job_id) else "failed"] += 1
    return counts
