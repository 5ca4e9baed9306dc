"""The scheduled reports' emails: one function per report returns its context; queue_report puts it in the outbox.

Every figure is an aggregate query grouped by currency; amounts of different currencies are never added up.
A report is a list of sections, each a small table, so that the text and the HTML body render them alike.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from babel.dates import format_date
from flask import current_app
from sqlalchemy import and_, case, func, select

from ..db import now_utc
from ..extensions import db
from .replica import reads
from ..ledger.models import Dispute, Donation, Frequency, Payout, RecurringDonation, RecurringStatus, Refund
from ..mail import outbox
from ..mail.attachments import describe
from ..money import Money
from ..staff.operations import PAID, top
from ..staff.auth import audit
from .schedule import Period, ReportKind, ReportSchedule, ScheduleError, dedupe_key, send_now_period

log = logging.getLogger(__name__)

#: Stripe's dispute status once the money is gone for good.
DISPUTE_LOST = "lost"


def _money(minor, currency: str) -> str:
    return Money(int(minor or 0), currency).format("en")


def _date(moment) -> str:
    return format_date(moment, "d MMMM y", locale="en")


def section(title: str, columns: list[str], rows: list[list[str]], *, empty: str, note: str = "") -> dict:
    """One table of a report. ``rows`` hold display strings, one per column; ``empty`` is shown when there are none."""
    return {"title": title, "columns": columns, "rows": rows, "empty": empty, "note": note}


def _base(period: Period) -> dict:
    return {
        "publication": current_app.config["PUBLICATION_NAME"],
        "public_url": current_app.config["PUBLIC_URL"],
        "first_day": _date(period.start),
        "last_day": _date(period.last_day),
    }


def _in(column, period: Period):
    return and_(column >= period.start, column < period.end)


# -- weekly supporters -------------------------------------------------------------------------------

def _recurring_rows(*where) -> list[list[str]]:
    """Recurring gifts per currency and frequency: how many, and what they bring per period (monthly and
    yearly amounts are not added together either)."""
    rows = reads().execute(
        select(RecurringDonation.currency, RecurringDonation.frequency, func.count(),
               func.sum(RecurringDonation.amount))
        .where(*where).group_by(RecurringDonation.currency, RecurringDonation.frequency)
        .order_by(RecurringDonation.currency, RecurringDonation.frequency)
    ).all()
    return [[currency, Frequency(frequency).label.lower(), str(n), _money(total, currency)]
            for currency, frequency, n, total in rows]


def weekly_supporters_context(period: Period) -> dict:
    """New and lost supporters, gifts past due and the best campaigns of the 7 days before the send day."""
    paid_in_week = (Donation.status.in_(PAID), _in(Donation.paid_at, period))
    raised = reads().execute(
        select(Donation.currency, func.count(), func.sum(Donation.amount)).where(*paid_in_week)
        .group_by(Donation.currency).order_by(Donation.currency)).all()

    # A supporter is new in the week when their first paid gift ever falls in it.
    first = (select(Donation.supporter_id, func.min(Donation.paid_at).label("first_paid"))
             .where(Donation.status.in_(PAID)).group_by(Donation.supporter_id).subquery())
    newcomer = and_(first.c.first_paid >= period.start, first.c.first_paid < period.end)
    new_total = reads().scalar(select(func.count()).select_from(first).where(newcomer)) or 0
    new_rows = reads().execute(
        select(Donation.currency, func.count(Donation.supporter_id.distinct()), func.count(),
               func.sum(Donation.amount))
        .join(first, first.c.supporter_id == Donation.supporter_id)
        .where(newcomer, *paid_in_week).group_by(Donation.currency).order_by(Donation.currency)).all()

    lost = _recurring_rows(_in(RecurringDonation.canceled_at, period))
    past_due = _recurring_rows(RecurringDonation.status == RecurringStatus.PAST_DUE)
    campaigns = top(period.start, period.end, "campaign")

    sections = [
        section("Raised in the week", ["Currency", "Gifts", "Amount"],
                [[c, str(n), _money(total, c)] for c, n, total in raised], empty="No gifts this week."),
        section("New supporters", ["Currency", "Supporters", "Gifts", "Amount"],
                [[c, str(people), str(n), _money(total, c)] for c, people, n, total in new_rows],
                empty="No new supporters this week.",
                note=(f"{new_total} supporter{'' if new_total == 1 else 's'} gave for the first time. "
                      "The amount is what they gave in the week; someone who gave in two currencies is "
                      "counted under each.") if new_total else ""),
        section("Recurring gifts cancelled", ["Currency", "Frequency", "Gifts", "Amount per period"], lost,
                empty="No recurring gift was cancelled this week."),
        section("Recurring gifts past due now", ["Currency", "Frequency", "Gifts", "Amount per period"], past_due,
                empty="No recurring gift is past due."),
        section("Top campaigns", ["Currency", "Campaign", "Raised"],
                [[c, name, _money(total, c)] for c in sorted(campaigns) for name, total in campaigns[c]],
                empty="No gifts through a campaign this week."),
    ]
    return {**_base(period), "week": week_label(period.start), "sections": sections, "new_supporters": new_total}


# -- monthly accounting ------------------------------------------------------------------------------

def monthly_accounting_context(period: Period) -> dict:
    """Gifts, Stripe's fees, refunds and disputes of one calendar month (UTC), per currency."""
    # By the day each gift is in the books: one that reached us after the month was closed is in the next.
    paid_in_month = (Donation.status.in_(PAID), Donation.booked_on >= period.start.date(),
                     Donation.booked_on <= period.last_day)
    gifts = reads().execute(
        select(Donation.currency, func.count(), func.sum(Donation.amount)).where(*paid_in_month)
        .group_by(Donation.currency).order_by(Donation.currency)).all()
    # Fee and net are in the currency the money settled in, which may differ from the gift's.
    fees = reads().execute(
        select(Donation.settlement_currency, func.count(), func.sum(Donation.fee), func.sum(Donation.net))
        .where(*paid_in_month, Donation.fee.is_not(None), Donation.settlement_currency.is_not(None))
        .group_by(Donation.settlement_currency).order_by(Donation.settlement_currency)).all()
    unsettled = reads().scalar(select(func.count()).select_from(Donation).where(
        *paid_in_month, Donation.fee.is_(None))) or 0
    refunds = reads().execute(
        select(Refund.currency, func.count(), func.sum(Refund.amount)).where(_in(Refund.refunded_at, period))
        .group_by(Refund.currency).order_by(Refund.currency)).all()
    opened = reads().execute(
        select(Dispute.currency, func.count(), func.sum(Dispute.amount)).where(_in(Dispute.opened_at, period))
        .group_by(Dispute.currency).order_by(Dispute.currency)).all()
    lost = reads().execute(
        select(Dispute.currency, func.count(), func.sum(Dispute.amount))
        .where(Dispute.status == DISPUTE_LOST, _in(Dispute.closed_at, period))
        .group_by(Dispute.currency).order_by(Dispute.currency)).all()

    sections = [
        section("Gifts", ["Currency", "Gifts", "Gross"],
                [[c, str(n), _money(total, c)] for c, n, total in gifts], empty="No gifts in the month."),
        section("Stripe fees", ["Settlement currency", "Gifts", "Fees", "Net"],
                [[c, str(n), _money(fee, c), _money(net, c)] for c, n, fee, net in fees],
                empty="No fees known for the month.",
                note="In the currency each payment settled in."
                     + (f" {unsettled} gift{'' if unsettled == 1 else 's'} of the month "
                        f"{'has' if unsettled == 1 else 'have'} no fee from Stripe yet and "
                        f"{'is' if unsettled == 1 else 'are'} not included." if unsettled else "")),
        section("Refunds", ["Currency", "Refunds", "Amount"],
                [[c, str(n), _money(total, c)] for c, n, total in refunds], empty="No refunds in the month."),
        section("Disputes opened", ["Currency", "Disputes", "Amount"],
                [[c, str(n), _money(total, c)] for c, n, total in opened], empty="No disputes opened in the month."),
        section("Disputes lost", ["Currency", "Disputes", "Amount"],
                [[c, str(n), _money(total, c)] for c, n, total in lost], empty="No disputes lost in the month."),
    ]

    # Payouts by the day the money reached the bank; any whose lines do not add up is counted, not hidden.
    payouts = reads().execute(
        select(Payout.currency, func.count(), func.sum(Payout.amount),
               func.count(case((Payout.lines_total != Payout.amount, 1))),
               func.count(case((Payout.lines_total.is_(None), 1))))
        .where(Payout.status == "paid", Payout.arrival_date >= period.start.date(),
               Payout.arrival_date < period.end.date())
        .group_by(Payout.currency).order_by(Payout.currency)).all()
    extra_sections = [
        section("Payouts", ["Currency", "Payouts", "To the bank", "Not adding up", "Lines not fetched yet"],
                [[c, str(n), _money(total, c), str(wrong), str(waiting)] for c, n, total, wrong, waiting in payouts],
                empty="No payouts arrived in the month.",
                note="By arrival day. A payout that does not add up is listed with its difference at /staff/payouts."),
    ]
    # The month's ledger, built when the email leaves (see reports.operations.export_attachment).
    attachments = [describe("export_csv", export="ledger", start=period.start.date().isoformat(),
                            end=period.last_day.isoformat())]

    return {**_base(period), "month": format_date(period.start, "MMMM y", locale="en"), "sections": sections,
            "extra_sections": extra_sections, "attachments": attachments, "unsettled": unsettled}


CONTEXTS = {
    ReportKind.MONTHLY_ACCOUNTING: monthly_accounting_context,
    ReportKind.WEEKLY_SUPPORTERS: weekly_supporters_context,
}


def queue_report(kind: ReportKind, period: Period, recipients: list[str], *, manual: str | None = None) -> dict:
    """Put one email of ``kind`` for ``period`` in the outbox per recipient, each under its own dedupe key.

    The figures are computed once. Each recipient's email is written in a savepoint of its own, so one that
    fails is logged and counted while the others still go out. Returns ``{"queued": n, "failed": n}``.
    """
    context = CONTEXTS[kind](period)
    counts = {"queued": 0, "failed": 0}
    for recipient in recipients:
        try:
            with db.session.begin_nested():
                outbox.queue(kind.value, recipient, context, attachments=context.get("attachments"),
                             dedupe_key=dedupe_key(kind, period.key, recipient, manual=manual))
        except Exception:  # any failure for one address must not cost the others their report
            log.exception("report %s %s for %s could not be queued", kind.value, period.key, recipient)
            counts["failed"] += 1
        else:
            counts["queued"] += 1
    return counts


def send_now(schedule: ReportSchedule, token: str, now: datetime | None = None) -> dict:
    """Queue ``schedule``'s report to its recipients at once, whether or not it is enabled or due.

    Its dedupe keys carry ``now:<token>`` (one token per rendered button), so it never stands in for the
    scheduled sending, and a double-clicked button queues it once.
    """
    if not schedule.recipients:
        raise ScheduleError("Add at least one recipient and save first.")
    period = send_now_period(schedule.kind, now or now_utc())
    counts = queue_report(schedule.kind, period, schedule.recipients, manual=token)
    audit("report.send_now", "report_schedule", schedule.kind.value, start=period.start.date().isoformat(),
          end=period.last_day.isoformat(), recipients=list(schedule.recipients), **counts)
    return counts


def week_label(start: datetime) -> str:
    """``12–18 October 2026`` for the seven days from ``start``."""
    end = start + timedelta(days=6)
    return f"{start.day}–{_date(end)}" if start.month == end.month else f"{_date(start)} – {_date(end)}"
