"""A/B statistics: what counts as an impression, a gift and money raised per variant; the probability that
a variant beats the others; the minimum sample before a winner is named; Thompson sampling's shares."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from donations.campaigns.experiments import (
    allocation,
    beta_parameters,
    floored_shares,
    monte_carlo_best,
    prob_b_beats_a,
    prob_best,
    thompson_shares,
    variant_stats,
)
from donations.campaigns.models import Allocation, Article, AskCount, Campaign, CampaignVariant
from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, Frequency, Supporter
from donations.money import Money

DAY = date(2026, 11, 10)
IN_RANGE = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)


def make_campaign(slug: str = "ab-test", keys=("a", "b"), **fields) -> Campaign:
    campaign = Campaign(slug=slug, name=slug, headline="H", body="B", button_label="Give", presets={},
                        default_frequency=Frequency.ONE_OFF,
                        variants=[CampaignVariant(key=k, name=f"Variant {k}") for k in keys], **fields)
    db.session.add(campaign)
    db.session.flush()
    return campaign


def article(url: str = "https://publisher.example/news/1") -> int:
    found = db.session.scalar(db.select(Article.id).where(Article.url == url))
    if found is None:
        db.session.add(row := Article(url=url))
        db.session.flush()
        found = row.id
    return found


def counts(campaign: Campaign, key: str, impressions: int, clicks: int = 0, day: date = DAY,
           url: str = "https://publisher.example/news/1") -> None:
    db.session.add(AskCount(day=day, campaign_id=campaign.id, variant_id=campaign.variant(key).id,
                            article_id=article(url), impressions=impressions, clicks=clicks))
    db.session.flush()


def gifts(campaign: Campaign, key: str, n: int, amount: int = 1000, currency: str = "EUR",
          frequency: Frequency = Frequency.ONE_OFF, status: DonationStatus = DonationStatus.SUCCEEDED,
          paid_at: datetime = IN_RANGE, from_checkout: bool = True, refunded: int = 0) -> None:
    """``n`` donations to ``key``, in bulk: the tests need hundreds."""
    supporter = Supporter(email=f"{uuid.uuid4().hex}@example.net")
    db.session.add(supporter)
    db.session.flush()
    variant_id = campaign.variant(key).id
    attempts, donations = [], []
    for _ in range(n):
        attempt_id = str(uuid.uuid4()) if from_checkout else None
        if attempt_id:
            attempts.append({"id": attempt_id, "campaign_id": campaign.id, "email": "r@example.net", "amount": amount,
                             "currency": currency, "frequency": frequency, "gateway": "sandbox",
                             "variant_id": variant_id, "created_at": paid_at, "covered_fee": 0, "locale": "en",
                             "gateway_tries": 0})
        donations.append({"supporter_id": supporter.id, "campaign_id": campaign.id, "attempt_id": attempt_id,
                          "amount": amount, "currency": currency, "frequency": frequency, "status": status,
                          "paid_at": paid_at, "variant_id": variant_id, "amount_refunded": refunded,
                          "created_at": paid_at, "updated_at": paid_at, "covered_fee": 0})
    if attempts:
        db.session.execute(insert(CheckoutAttempt), attempts)
    db.session.execute(insert(Donation), donations)


def by_key(stats) -> dict:
    return {row.key: row for row in stats.variants}


# -- the Bayesian part -----------------------------------------------------------------------------

def test_probability_to_beat_matches_the_known_value_for_100_and_120_gifts_in_1000():
    # Normal approximation: z = 0.02 / sqrt(.1*.9/1000 + .12*.88/1000) = 1.430, Phi(z) = 0.9236.
    p = prob_b_beats_a(beta_parameters(100, 1000), beta_parameters(120, 1000))
    assert p == pytest.approx(0.923, abs=0.003)
    assert prob_best((beta_parameters(100, 1000), beta_parameters(120, 1000)))[1] == p


def test_monte_carlo_agrees_with_the_exact_two_variant_value():
    params = (beta_parameters(100, 1000), beta_parameters(120, 1000))
    assert monte_carlo_best(params)[1] == pytest.approx(prob_b_beats_a(*params), abs=0.01)


def test_equal_variants_are_equally_likely_to_be_best():
    assert prob_best((beta_parameters(0, 0), beta_parameters(0, 0))) == pytest.approx((0.5, 0.5))
    three = monte_carlo_best((beta_parameters(50, 1000),) * 3)
    assert sum(three) == pytest.approx(1)
    assert all(p == pytest.approx(1 / 3, abs=0.02) for p in three)


def test_probabilities_are_deterministic_for_the_same_data():
    params = (beta_parameters(10, 400), beta_parameters(14, 400), beta_parameters(12, 400))
    first = monte_carlo_best(params)
    prob_best.cache_clear()
    assert prob_best(params) == first == monte_carlo_best(params)
    assert first[1] > first[2] > first[0]


def test_gifts_above_impressions_do_not_make_a_negative_beta_parameter():
    assert beta_parameters(5, 3) == (6, 1)
    assert beta_parameters(-1, -4) == (1, 1)
    p = prob_best((beta_parameters(5, 3), beta_parameters(1, 1000)))
    assert 0.99 < p[0] <= 1 and sum(p) == pytest.approx(1)


def test_floored_shares_keep_the_floor_and_sum_to_one():
    shares = floored_shares({"a": 0.999, "b": 0.001, "c": 0.0}, 10)
    assert sum(shares.values()) == pytest.approx(1)
    assert min(shares.values()) >= 0.1 - 1e-12
    assert shares["a"] == pytest.approx(0.1 + 0.7 * 0.999)


@pytest.mark.parametrize("floor", [34, 50])
def test_floors_that_cannot_all_be_met_give_equal_shares(floor):
    assert floored_shares({"a": 0.9, "b": 0.1, "c": 0.0}, floor) == pytest.approx({"a": 1 / 3, "b": 1 / 3,
                                                                                     "c": 1 / 3})


# -- the figures per variant -----------------------------------------------------------------------

def test_known_figures_per_variant(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 1500, 60)
    counts(campaign, "a", 500, 20, url="https://publisher.example/news/2")
    counts(campaign, "b", 1000, 30)
    gifts(campaign, "a", 14, amount=1000)
    gifts(campaign, "a", 5, amount=500, frequency=Frequency.MONTHLY)
    gifts(campaign, "a", 1, amount=5000, frequency=Frequency.YEARLY, currency="USD")
    gifts(campaign, "b", 3, amount=2000, currency="GBP")

    stats = by_key(variant_stats(campaign, DAY, DAY))

    a, b = stats["a"], stats["b"]
    assert (a.impressions, a.clicks, a.gifts, a.recurring_gifts) == (2000, 80, 20, 6)
    assert a.ctr == pytest.approx(0.04) and a.conversion == pytest.approx(0.01)
    assert a.recurring_share == pytest.approx(0.3)
    # EUR: 14 × 10.00 + 5 × 5.00 = 165.00 over 2,000 impressions; USD 50.00: never added together.
    assert a.raised == {"EUR": 16500, "USD": 5000}
    assert a.per_mille == [Money(8250, "EUR"), Money(2500, "USD")]
    assert (b.impressions, b.gifts, b.recurring_share) == (1000, 3, 0.0)
    assert b.per_mille == [Money(6000, "GBP")]
    assert a.p_best + b.p_best == pytest.approx(1)
    assert a.p_best == pytest.approx(1 - prob_b_beats_a(beta_parameters(20, 2000), beta_parameters(3, 1000)))


def test_money_per_mille_rounds_half_to_even(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 2000)
    counts(campaign, "b", 2000)
    gifts(campaign, "a", 1, amount=105)  # 105 × 1000 / 2000 = 52.5 → 52
    gifts(campaign, "b", 1, amount=107)  # 53.5 → 54

    stats = by_key(variant_stats(campaign, DAY, DAY))

    assert stats["a"].per_mille == [Money(52, "EUR")]
    assert stats["b"].per_mille == [Money(54, "EUR")]


def test_what_counts_as_a_gift(app_ctx):
    campaign = make_campaign()
    other = make_campaign("other")
    counts(campaign, "a", 100)
    gifts(campaign, "a", 1)  # counted
    gifts(campaign, "a", 1, status=DonationStatus.REFUNDED, refunded=1000)  # converted, raised nothing
    gifts(campaign, "a", 1, status=DonationStatus.PARTIALLY_REFUNDED, refunded=400)
    gifts(campaign, "a", 1, status=DonationStatus.DISPUTED)
    gifts(campaign, "a", 1, status=DonationStatus.FAILED)
    gifts(campaign, "a", 1, status=DonationStatus.PENDING)
    gifts(campaign, "a", 1, frequency=Frequency.MONTHLY, from_checkout=False)  # a renewal
    gifts(campaign, "a", 1, paid_at=IN_RANGE - timedelta(days=1))  # the day before
    gifts(campaign, "a", 1, paid_at=datetime(2026, 11, 11, 0, 0, tzinfo=timezone.utc))  # the day after
    gifts(other, "a", 1)

    a = by_key(variant_stats(campaign, DAY, DAY))["a"]

    assert a.gifts == 4
    assert a.raised == {"EUR": 1000 + 0 + 600 + 1000}


def test_counts_are_read_for_the_days_in_range_only(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 10, 1, day=DAY - timedelta(days=1))
    counts(campaign, "a", 20, 2, day=DAY)
    counts(campaign, "a", 40, 4, day=DAY + timedelta(days=1))
    counts(campaign, "a", 80, 8, day=DAY + timedelta(days=2))

    a = by_key(variant_stats(campaign, DAY, DAY + timedelta(days=1)))["a"]

    assert (a.impressions, a.clicks) == (60, 6)


def test_out_of_order_gifts_above_impressions_do_not_crash(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 2)
    gifts(campaign, "a", 5)

    stats = by_key(variant_stats(campaign, DAY, DAY))

    assert stats["a"].conversion == 2.5  # shown as it is; the Beta parameters are kept valid
    assert 0 <= stats["b"].p_best <= stats["a"].p_best <= 1


def test_a_deactivated_variant_without_figures_is_left_out_and_one_with_figures_stays(app_ctx):
    campaign = make_campaign(keys=("a", "b", "c"))
    campaign.variant("b").active = False
    campaign.variant("c").active = False
    counts(campaign, "c", 10)

    assert [row.key for row in variant_stats(campaign, DAY, DAY).variants] == ["a", "c"]


# -- naming a winner -------------------------------------------------------------------------------

def test_no_winner_below_the_minimum_impressions(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 900)
    counts(campaign, "b", 400)
    gifts(campaign, "b", 40)

    stats = variant_stats(campaign, DAY, DAY)

    assert by_key(stats)["b"].p_best > 0.999
    assert stats.winner is None
    assert stats.impressions_needed == 100 + 600
    assert not stats.enough_data


def test_no_winner_below_the_minimum_gifts(app_ctx, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "AB_MIN_GIFTS", 30)
    campaign = make_campaign()
    counts(campaign, "a", 5000)
    counts(campaign, "b", 5000)
    gifts(campaign, "b", 25)

    stats = variant_stats(campaign, DAY, DAY)

    assert stats.winner is None and stats.impressions_needed == 0 and stats.gifts_needed == 5


def test_a_winner_is_named_past_the_minimum_and_the_probability(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 2000)
    counts(campaign, "b", 2000)
    gifts(campaign, "a", 20)
    gifts(campaign, "b", 45)

    stats = variant_stats(campaign, DAY, DAY)

    assert stats.winner is not None and stats.winner.key == "b"
    assert stats.winner.p_best >= 0.95


def test_no_winner_when_no_variant_is_likely_enough(app_ctx):
    campaign = make_campaign()
    counts(campaign, "a", 1000)
    counts(campaign, "b", 1000)
    gifts(campaign, "a", 100)
    gifts(campaign, "b", 120)  # 92 %: below 95 %

    stats = variant_stats(campaign, DAY, DAY)

    assert stats.enough_data and stats.winner is None
    assert by_key(stats)["b"].p_best == pytest.approx(0.923, abs=0.003)


# -- splitting readers -----------------------------------------------------------------------------

def test_split_allocation_is_by_weight(app_ctx):
    campaign = make_campaign(keys=("a", "b", "c"))
    campaign.variant("a").weight, campaign.variant("b").weight = 3, 1
    campaign.variant("c").active = False

    assert allocation(campaign) == {"a": 0.75, "b": 0.25}


def test_thompson_shares_follow_the_probability_to_beat_with_a_floor(app_ctx):
    today = datetime.now(timezone.utc).date()
    campaign = make_campaign(keys=("a", "b", "c"), allocation=Allocation.THOMPSON, allocation_floor=10)
    for key, n in (("a", 20), ("b", 60), ("c", 25)):
        counts(campaign, key, 1000, day=today)
        gifts(campaign, key, n, paid_at=datetime.now(timezone.utc) - timedelta(hours=1))

    shares = allocation(campaign)

    assert sum(shares.values()) == pytest.approx(1)
    assert shares["b"] > 0.75 and min(shares.values()) >= 0.1 - 1e-12
    assert shares["a"] == pytest.approx(0.1, abs=0.01)


def test_thompson_weighs_the_last_30_days_only(app_ctx):
    today = datetime.now(timezone.utc).date()
    campaign = make_campaign(allocation=Allocation.THOMPSON, allocation_floor=5)
    counts(campaign, "a", 5000, day=today - timedelta(days=30))  # outside the window: a would win with it
    gifts(campaign, "a", 500, paid_at=datetime.now(timezone.utc) - timedelta(days=31))
    counts(campaign, "a", 1000, day=today)
    gifts(campaign, "a", 10, paid_at=datetime.now(timezone.utc))
    counts(campaign, "b", 1000, day=today - timedelta(days=29))
    gifts(campaign, "b", 30, paid_at=datetime.now(timezone.utc) - timedelta(days=29))

    # On the day the counts were written for (the window's edge moves a day if midnight passes meanwhile).
    shares = thompson_shares(campaign, campaign.active_variants, today=today)

    assert shares["b"] > 0.9 and shares["a"] == pytest.approx(0.05, abs=0.01)


def test_thompson_without_data_splits_equally_and_ignores_inactive_variants(app_ctx):
    campaign = make_campaign(keys=("a", "b", "c"), allocation=Allocation.THOMPSON, allocation_floor=10)
    campaign.variant("c").active = False

    assert allocation(campaign) == pytest.approx({"a": 0.5, "b": 0.5})


def test_thompson_with_a_floor_above_what_is_possible_gives_equal_shares(app_ctx):
    campaign = make_campaign(keys=("a", "b", "c"), allocation=Allocation.THOMPSON, allocation_floor=40)
    counts(campaign, "a", 1000, day=datetime.now(timezone.utc).date())
    gifts(campaign, "a", 100, paid_at=datetime.now(timezone.utc))

    assert allocation(campaign) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
