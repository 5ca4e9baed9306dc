"""A campaign's goal: how far this period's gifts have come towards it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..ledger.models import Donation, DonationStatus
from ..money import Money
from .models import Campaign, GoalPeriod

#: Gifts that count towards a goal: paid and not given back in full.
COUNTED = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.DISPUTED)


@dataclass(frozen=True)
class GoalProgress:
    raised: Money
    goal: Money
    period: GoalPeriod

    @property
    def percent(self) -> int:
        """Whole percent reached, capped at 100 for the bar (the figures say when it is passed)."""
        return min(100, self.raised.amount * 100 // self.goal.amount)


def period_start(campaign: Campaign, now: datetime) -> datetime:
    if campaign.goal_period is GoalPeriod.MONTH:
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return campaign.starts_at or campaign.created_at


def progress(campaign: Campaign, now: datetime) -> GoalProgress | None:
    """Gifts to ``campaign`` in its goal's currency since the period began (refunds taken off), or None
    when it has no goal. Gifts in other currencies are not converted: a goal is in one currency."""
    if not campaign.goal_amount or not campaign.goal_currency:
        return None
    raised = db.session.scalar(
        select(func.coalesce(func.sum(Donation.amount - Donation.amount_refunded), 0)).where(
            Donation.campaign_id == campaign.id,
            Donation.currency == campaign.goal_currency,
            Donation.status.in_(COUNTED),
            Donation.paid_at >= period_start(campaign, now),
            Donation.paid_at <= now,
        )
    )
    return GoalProgress(Money(int(raised), campaign.goal_currency), Money(campaign.goal_amount, campaign.goal_currency),
                        campaign.goal_period)
