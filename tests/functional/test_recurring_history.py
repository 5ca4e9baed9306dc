"""The dashboard's recurring history (active recurring supporters and monthly recurring revenue at each of the last
12 month ends), computed in one pass over the recurring gifts: the same as asking the database month by month."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, case, func, or_, select

from donations.extensions import db
from donations.ledger.models import Frequency, RecurringDonation, RecurringStatus, Supporter
from donations.staff import operations as ops

TODAY = date.today()


def month_by_month(today: date) -> dict:
    """The history as the dashboard asked for it before: two queries per month end (the specification)."""
    supporters, revenue = [], {}
    for label, end in ops.month_ends(today):
        alive = and_(RecurringDonation.created_at < end,
                     or_(RecurringDonation.canceled_at.is_(None), RecurringDonation.canceled_at >= end),
                     RecurringDonation.status != RecurringStatus.INCOMPLETE)
        supporters.append((label, db.session.scalar(
            select(func.count(RecurringDonation.supporter_id.distinct())).where(alive)) or 0))
        monthly = case((RecurringDonation.frequency == Frequency.MONTHLY, RecurringDonation.amount), else_=0)
        yearly = case((RecurringDonation.frequency == Frequency.YEARLY, RecurringDonation.amount), else_=0)
        for currency, m, y in db.session.execute(select(RecurringDonation.currency, func.sum(monthly),
                                                        func.sum(yearly)).where(alive)
                                                 .group_by(RecurringDonation.currency)):
            revenue.setdefault(currency, {})[label] = int(m or 0) + int(y or 0) // 12
    labels = [label for label, _ in ops.month_ends(today)]
    return {"supporters": supporters,
            "mrr": {c: [(label, v.get(label, 0)) for label in labels] for c, v in sorted(revenue.items())}}


def ago(days: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days), time(9), timezone.utc)


def test_the_history_in_one_pass_is_the_history_month_by_month(app_ctx):
    people = [Supporter(email=f"r{n}@example.com") for n in range(6)]
    db.session.add_all(people)
    plan = [  # (supporter, amount, currency, frequency, made days ago, cancelled days ago or None, status)
        (0, 1000, "EUR", Frequency.MONTHLY, 500, None, RecurringStatus.ACTIVE),  # before the window, alive
        (0, 500, "EUR", Frequency.MONTHLY, 200, 90, RecurringStatus.CANCELED),  # overlaps the first: counted once
        (1, 12000, "USD", Frequency.YEARLY, 300, None, RecurringStatus.PAST_DUE),  # yearly: a twelfth a month
        (1, 2500, "USD", Frequency.MONTHLY, 100, 40, RecurringStatus.CANCELED),
        (2, 700, "EUR", Frequency.MONTHLY, 330, 250, RecurringStatus.CANCELED),  # two gifts apart in time
        (2, 900, "EUR", Frequency.MONTHLY, 120, None, RecurringStatus.PAUSED),
        (3, 3000, "GBP", Frequency.MONTHLY, 60, None, RecurringStatus.INCOMPLETE),  # never started: not counted
        (4, 1500, "GBP", Frequency.MONTHLY, 450, 420, RecurringStatus.CANCELED),  # over before the window
        (5, 800, "EUR", Frequency.MONTHLY, 10, -20, RecurringStatus.ACTIVE),  # cancelled in the future
        (5, 400, "EUR", Frequency.YEARLY, 0, None, RecurringStatus.ACTIVE),  # made today
    ]
    for n, (who, amount, currency, frequency, made, cancelled, status) in enumerate(plan):
        db.session.add(RecurringDonation(
            supporter=people[who], amount=amount, currency=currency, frequency=frequency, status=status,
            stripe_subscription_id=f"sub_history_{n}", created_at=ago(made),
            canceled_at=ago(cancelled) if cancelled is not None else None))
    db.session.flush()

    history = ops.recurring_history(TODAY)

    assert history == month_by_month(TODAY)
    assert history["supporters"][-1][1] == 4  # 0, 1, 2 and 5, each once
    assert "GBP" not in history["mrr"]  # incomplete, or over before the window


def test_without_recurring_gifts_the_history_is_zeros(app_ctx):
    history = ops.recurring_history(TODAY)

    assert history == month_by_month(TODAY)
    assert [count for _, count in history["supporters"]] == [0] * 12 and history["mrr"] == {}
