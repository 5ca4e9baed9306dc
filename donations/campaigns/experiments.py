"""A/B tests of the ask: how readers are split between a campaign's variants, and how each variant did.

What counts (the campaign page and Thompson sampling read the same figures):

- **Impressions and clicks**: the sums of ``AskCount`` (an ask seen, a button pressed), per day in UTC.
- **Gifts**: donations booked from a checkout that named the variant (``variant_id`` set and ``attempt_id``
  not null: renewals of a recurring gift are not new conversions), paid in the range, whatever happened to
  the money afterwards: a refunded or disputed gift still converted (the reader gave), so ``refunded`` counts
  as a gift; failed and pending ones do not.
- **Money raised** per currency is what was paid less what was refunded (as the goal counts it), never summed
  across currencies; per 1,000 impressions it is rounded half to even to a whole minor unit.
- **Probability to beat**: Bayesian Beta-Binomial, a uniform prior, each variant's conversion rate
  (gifts / impressions) Beta(1 + gifts, 1 + impressions - gifts). For two variants it is computed exactly;
  for more by Monte Carlo with a fixed seed, so the same figures always give the same answer.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from flask import current_app
from sqlalchemy import case, func, select

from ..extensions import db
from ..ledger.models import Donation, DonationStatus, Frequency
from ..money import Money
from .models import Allocation, AskCount, Campaign, CampaignVariant

#: Donations that count as gifts: paid, whatever happened to the money afterwards (see the module's docstring).
CONVERTED = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.DISPUTED,
             DonationStatus.REFUNDED)
#: Monte Carlo draws for three variants or more (two are computed exactly).
DRAWS = 20_000
#: The seed of those draws: the same data always gives the same probabilities.
SEED = 20261126
#: Thompson sampling weighs the last 30 days (today included): recent enough to follow a change in the
#: readers or the news, long enough that a quiet day does not swing the split.
THOMPSON_DAYS = 30


# -- the Bayesian part ----------------------------------------------------------------------------

def beta_parameters(gifts: int, impressions: int) -> tuple[int, int]:
    """The posterior Beta(a, b) of a conversion rate from a uniform prior. Gifts can outnumber impressions
    when counts arrive late (a gift booked before the day's impressions are flushed): the failures are then
    taken as none, never negative."""
    gifts, impressions = max(gifts, 0), max(impressions, 0)
    return 1 + gifts, 1 + max(impressions - gifts, 0)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def prob_b_beats_a(a: tuple[int, int], b: tuple[int, int]) -> float:
    """P(X_b > X_a) for X_a ~ Beta(*a), X_b ~ Beta(*b), exactly (Evan Miller's closed form for an integer
    first parameter of b): a sum of alpha_b terms, each through log-gamma so that large counts do not
    overflow."""
    alpha_a, beta_a = a
    alpha_b, beta_b = b
    total = 0.0
    for i in range(alpha_b):
        total += math.exp(_log_beta(alpha_a + i, beta_a + beta_b) - math.log(beta_b + i)
                          - _log_beta(1 + i, beta_b) - _log_beta(alpha_a, beta_a))
    return min(1.0, max(0.0, total))


@lru_cache(maxsize=512)
def prob_best(params: tuple[tuple[int, int], ...]) -> tuple[float, ...]:
    """For each Beta(a, b) in ``params``, the probability that its rate is the highest. Memoised on the
    parameters alone, so the campaigns JSON can ask every minute for the price of a dictionary look-up."""
    if not params:
        return ()
    if len(params) == 1:
        return (1.0,)
    if len(params) == 2:
        second = prob_b_beats_a(params[0], params[1])
        return (1.0 - second, second)
    return monte_carlo_best(params)


def monte_carlo_best(params: tuple[tuple[int, int], ...], draws: int = DRAWS) -> tuple[float, ...]:
    """P(best) for each Beta(a, b) from ``draws`` joint draws with a fixed seed (deterministic)."""
    rng = random.Random(SEED)
    wins = [0] * len(params)
    for _ in range(draws):
        sample = [rng.betavariate(a, b) for a, b in params]
        wins[max(range(len(sample)), key=sample.__getitem__)] += 1
    return tuple(w / draws for w in wins)


# -- statistics for the campaign page -------------------------------------------------------------

@dataclass
class VariantStats:
    key: str
    name: str
    active: bool
    impressions: int = 0
    clicks: int = 0
    gifts: int = 0
    recurring_gifts: int = 0
    #: Paid less refunded, per currency, minor units.
    raised: dict[str, int] = field(default_factory=dict)
    #: P(this variant converts best), from the posterior of every variant in the table.
    p_best: float = 0.0

    @property
    def ctr(self) -> float | None:
        """Clicks per impression; None without impressions."""
        return self.clicks / self.impressions if self.impressions else None

    @property
    def conversion(self) -> float | None:
        """Gifts per impression; None without impressions."""
        return self.gifts / self.impressions if self.impressions else None

    @property
    def recurring_share(self) -> float | None:
        """Monthly and yearly gifts among the gifts; None without gifts."""
        return self.recurring_gifts / self.gifts if self.gifts else None

    @property
    def per_mille(self) -> list[Money]:
        """Money raised per 1,000 impressions, one amount per currency (half to even, whole minor units)."""
        if not self.impressions:
            return []
        return [Money(_div_half_even(amount * 1000, self.impressions), currency)
                for currency, amount in sorted(self.raised.items())]


@dataclass
class ExperimentStats:
    variants: list[VariantStats]
    #: The variant named the winner, or None.
    winner: VariantStats | None
    #: Impressions still missing before a winner may be named (sum over the variants below the minimum).
    impressions_needed: int
    #: Gifts still missing before a winner may be named.
    gifts_needed: int
    min_impressions: int
    min_gifts: int
    winner_probability: float

    @property
    def enough_data(self) -> bool:
        return not self.impressions_needed and not self.gifts_needed


def _div_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
        quotient += 1
    return quotient


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, timezone.utc)


def _counts(campaign_id: int, start: date, end: date | None) -> dict[int, tuple[int, int]]:
    """{variant id: (impressions, clicks)} for the days from ``start`` to ``end`` (inclusive; None = open)."""
    where = [AskCount.campaign_id == campaign_id, AskCount.day >= start]
    if end is not None:
        where.append(AskCount.day <= end)
    rows = db.session.execute(
        select(AskCount.variant_id, func.sum(AskCount.impressions), func.sum(AskCount.clicks))
        .where(*where).group_by(AskCount.variant_id))
    return {variant_id: (int(impressions or 0), int(clicks or 0)) for variant_id, impressions, clicks in rows}


def _gift_filter(variant_ids: list[int], start: date, end: date | None) -> list:
    where = [Donation.variant_id.in_(variant_ids), Donation.attempt_id.is_not(None), Donation.status.in_(CONVERTED),
             Donation.paid_at >= _utc_midnight(start)]
    if end is not None:
        where.append(Donation.paid_at < _utc_midnight(end + timedelta(days=1)))
    return where


def _gifts(variant_ids: list[int], start: date, end: date | None) -> dict[int, tuple[int, int]]:
    """{variant id: (gifts, recurring gifts)}: checkouts the ask produced, paid in the range."""
    if not variant_ids:
        return {}
    recurring = case((Donation.frequency.in_([Frequency.MONTHLY, Frequency.YEARLY]), 1), else_=0)
    rows = db.session.execute(
        select(Donation.variant_id, func.count(), func.sum(recurring))
        .where(*_gift_filter(variant_ids, start, end)).group_by(Donation.variant_id))
    return {variant_id: (int(gifts), int(recurring_gifts or 0)) for variant_id, gifts, recurring_gifts in rows}


def _raised(variant_ids: list[int], start: date, end: date) -> dict[int, dict[str, int]]:
    rows = db.session.execute(
        select(Donation.variant_id, Donation.currency, func.sum(Donation.amount - Donation.amount_refunded))
        .where(*_gift_filter(variant_ids, start, end)).group_by(Donation.variant_id, Donation.currency))
    result: dict[int, dict[str, int]] = {}
    for variant_id, currency, amount in rows:
        result.setdefault(variant_id, {})[currency] = int(amount or 0)
    return result


def variant_stats(campaign: Campaign, start: date, end: date) -> ExperimentStats:
    """Per variant, from ``start`` to ``end`` (days in UTC, both included): impressions, clicks, gifts, rates,
    money per 1,000 impressions per currency, the share of recurring gifts and the probability of being the
    best; and the winner, once every variant compared has AB_MIN_IMPRESSIONS impressions, the test has
    AB_MIN_GIFTS gifts, and one variant is best with at least AB_WINNER_PROBABILITY.

    The table compares the active variants and any deactivated one that has figures in the range (a variant
    switched off halfway still tells what it did); a deactivated variant without figures is left out, as its
    flat prior would only take probability from the others."""
    config = current_app.config
    variants = list(campaign.variants)
    ids = [variant.id for variant in variants]
    counts = _counts(campaign.id, start, end)
    gifts = _gifts(ids, start, end)
    raised = _raised(ids, start, end) if ids else {}
    rows: list[VariantStats] = []
    for variant in variants:
        impressions, clicks = counts.get(variant.id, (0, 0))
        gift_count, recurring_count = gifts.get(variant.id, (0, 0))
        if not variant.active and not (impressions or clicks or gift_count):
            continue
        rows.append(VariantStats(variant.key, variant.name, variant.active, impressions, clicks, gift_count,
                                 recurring_count, raised.get(variant.id, {})))
    for row, p in zip(rows, prob_best(tuple(beta_parameters(r.gifts, r.impressions) for r in rows)), strict=True):
        row.p_best = p

    min_impressions, min_gifts = config["AB_MIN_IMPRESSIONS"], config["AB_MIN_GIFTS"]
    threshold = config["AB_WINNER_PROBABILITY"]
    impressions_needed = sum(max(0, min_impressions - row.impressions) for row in rows)
    gifts_needed = max(0, min_gifts - sum(row.gifts for row in rows))
    winner = None
    if len(rows) >= 2 and not impressions_needed and not gifts_needed:
        best = max(rows, key=lambda row: row.p_best)
        winner = best if best.p_best >= threshold else None
    return ExperimentStats(rows, winner, impressions_needed, gifts_needed, min_impressions, min_gifts, threshold)


# -- splitting readers ----------------------------------------------------------------------------

def floored_shares(p_best: dict[str, float], floor_percent: int) -> dict[str, float]:
    """Shares from the probabilities of being best, each at least ``floor_percent`` % when that is possible:
    every variant gets the floor and the rest is split in proportion to its probability, so the shares
    still sum to 1. When the floors alone would take 100 % or more, every variant gets an equal share."""
    n = len(p_best)
    if not n:
        return {}
    floor = max(0, floor_percent) / 100
    if floor * n >= 1:
        return {key: 1 / n for key in p_best}
    total = sum(p_best.values())
    rest = 1 - floor * n
    return {key: floor + rest * (p / total if total else 1 / n) for key, p in p_best.items()}


def thompson_shares(campaign: Campaign, variants: list[CampaignVariant], today: date | None = None) -> dict[str, float]:
    """Thompson sampling's shares for ``variants``: each variant is shown as often as it is likely to be the
    best (over the last THOMPSON_DAYS days), floored at the campaign's ``allocation_floor``. Two aggregate
    queries per call; the probabilities are memoised on the counts."""
    today = today or datetime.now(timezone.utc).date()
    start = today - timedelta(days=THOMPSON_DAYS - 1)
    ids = [variant.id for variant in variants]
    counts = _counts(campaign.id, start, None)
    gifts = _gifts(ids, start, None)
    params = tuple(beta_parameters(gifts.get(v.id, (0, 0))[0], counts.get(v.id, (0, 0))[0]) for v in variants)
    p = dict(zip((v.key for v in variants), prob_best(params), strict=True))
    return floored_shares(p, campaign.allocation_floor)


def allocation(campaign: Campaign) -> dict[str, float]:
    """Each active variant's share of readers (summing to 1). Split: by weight. Thompson sampling: by the
    probability of converting best, each keeping ``allocation_floor`` %. The embed picks a variant from these
    shares with the reader's stable per-browser random number."""
    if campaign.allocation is Allocation.THOMPSON:
        variants = campaign.active_variants
        return thompson_shares(campaign, variants) if variants else {}
    variants = [variant for variant in campaign.active_variants if variant.weight > 0]
    total = sum(variant.weight for variant in variants)
    return {variant.key: variant.weight / total for variant in variants} if total else {}
