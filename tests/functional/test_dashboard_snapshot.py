"""The dashboard's snapshot: the page shows the same figures with it as without it, whatever was booked, paid or
renamed after it was taken; the job takes one a day and deletes the older ones."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select

from donations.campaigns.models import Campaign
from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, Frequency, Refund, Supporter
from donations.staff import operations as ops
from donations.staff.jobs import snapshot_dashboard
from donations.staff.models import DashboardSnapshot, DashboardSnapshotArticle
from tests.staff_helpers import signed_in

TODAY = date.today()


def at(days_ago: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour), timezone.utc)


@pytest.fixture
def campaigns(app_ctx) -> tuple[Campaign, Campaign]:
    spring = Campaign(slug="spring", name="Spring appeal", language="en", headline="h", body="b",
                      button_label="Give", presets={}, default_frequency=Frequency.ONE_OFF)
    autumn = Campaign(slug="autumn", name="Autumn appeal", language="en", headline="h", body="b",
                      button_label="Give", presets={}, default_frequency=Frequency.ONE_OFF)
    db.session.add_all([spring, autumn])
    db.session.flush()
    return spring, autumn


def gift(supporter: Supporter, amount: int, currency: str, days_ago: int | None, *, campaign=None,
         article: str | None = None, status: DonationStatus = DonationStatus.SUCCEEDED) -> Donation:
    donation = Donation(supporter=supporter, amount=amount, currency=currency, frequency=Frequency.ONE_OFF,
                        status=status, campaign_id=campaign.id if campaign else None, article_url=article,
                        paid_at=at(days_ago) if days_ago is not None else None)
    db.session.add(donation)
    db.session.flush()
    return donation


@pytest.fixture
def books(campaigns):
    """Gifts over 14 months in three currencies, two campaigns and three articles; refunds, a failure, and a
    gift still pending."""
    spring, autumn = campaigns
    people = [Supporter(email=f"s{n}@example.com") for n in range(4)]
    db.session.add_all(people)
    a, b, c = "/news/one", "/news/two", "/opinion/three"
    plan = [  # (amount, currency, days ago, campaign, article)
        (2500, "EUR", 0, spring, a), (1000, "EUR", 1, autumn, b), (3300, "USD", 2, spring, None),
        (700, "GBP", 9, None, c), (5100, "EUR", 33, autumn, a), (4200, "USD", 61, spring, b),
        (990, "EUR", 95, spring, c), (12000, "EUR", 150, autumn, None), (800, "USD", 200, None, a),
        (6000, "EUR", 320, spring, b), (1500, "GBP", 340, autumn, c), (9900, "EUR", 420, spring, a),
        (1234, "EUR", 5, autumn, c), (4321, "USD", 45, autumn, c), (250, "GBP", 120, spring, b),
    ]
    for n, (amount, currency, days_ago, campaign, article) in enumerate(plan):
        gift(people[n % 4], amount, currency, days_ago, campaign=campaign, article=article)
    refunded = gift(people[0], 3000, "EUR", 20, campaign=spring, article=b, status=DonationStatus.REFUNDED)
    partly = gift(people[1], 4000, "USD", 70, campaign=autumn, article=a, status=DonationStatus.PARTIALLY_REFUNDED)
    db.session.add_all([Refund(donation_id=refunded.id, amount=3000, currency="EUR", refunded_at=at(18)),
                        Refund(donation_id=partly.id, amount=1000, currency="USD", refunded_at=at(3))])
    gift(people[2], 7777, "EUR", None, campaign=spring, article=a, status=DonationStatus.FAILED)
    pending = gift(people[3], 5555, "EUR", None, campaign=autumn, article=b, status=DonationStatus.PENDING)
    db.session.flush()
    return {"people": people, "campaigns": campaigns, "pending": pending}


def everything(snapshot: DashboardSnapshot | None, date_from: date | None = None, date_to: date | None = None):
    """Every figure of the dashboard the snapshot may change, computed as the page does."""
    chart = ops.Period("last 12 months", ops.utc_day(ops.chart_start(TODAY)), ops.utc_day(TODAY + timedelta(days=1)))
    return {
        "figures": [ops.figures(p, snapshot) for p in ops.periods(TODAY, date_from, date_to)],
        "series": ops.raised_series(chart.start, chart.end, snapshot),
        "campaigns": ops.top(chart.start, chart.end, "campaign", snapshot=snapshot),
        "articles": ops.top(chart.start, chart.end, "article", snapshot=snapshot),
    }


def take(day: date = TODAY) -> DashboardSnapshot:
    watermark, pending = ops.snapshot_watermark()
    return ops.compute_snapshot(day, watermark, pending)


def test_the_figures_are_the_same_with_and_without_a_snapshot(books):
    live = everything(None)
    snapshot = take()

    assert snapshot.pending_ids == [books["pending"].id]
    assert everything(snapshot) == live
    assert live["figures"][0]["raised"] == {"EUR": 2500}  # today's gift is not in the snapshot, but live
    assert live["figures"][2]["gifts"] > 5 and set(live["series"][1]) == {"EUR", "GBP", "USD"}


def test_gifts_booked_paid_or_renamed_after_the_snapshot_are_counted_once(books):
    snapshot = take()
    people, (spring, autumn) = books["people"], books["campaigns"]
    # Booked late: paid 40 days ago, but its id is above the watermark.
    gift(people[0], 6100, "EUR", 40, campaign=autumn, article="/late/booked")
    gift(people[1], 880, "USD", 300, campaign=spring, article="/news/one")
    # Pending when the snapshot was taken, paid since, on a day the snapshot covers.
    pending = books["pending"]
    pending.transition(DonationStatus.SUCCEEDED)
    pending.paid_at = at(10)
    # A refund of a gift the snapshot counted changes the refunds, not the money raised.
    db.session.add(Refund(donation_id=pending.id, amount=555, currency="EUR", refunded_at=at(0)))
    autumn.name = "Autumn appeal (renamed)"
    db.session.flush()

    live = everything(None)
    assert everything(snapshot) == live
    assert any(name == "Autumn appeal (renamed)" for name, _ in live["campaigns"]["EUR"])
    assert ("/late/booked", 6100) in live["articles"]["EUR"]


def test_an_older_snapshot_and_a_chosen_range_give_the_same_figures(books):
    older = take(TODAY - timedelta(days=3))
    gift(books["people"][2], 4400, "GBP", 1, article="/news/two")

    assert everything(older) == everything(None)
    assert everything(older, TODAY - timedelta(days=50), TODAY - timedelta(days=2)) == everything(
        None, TODAY - timedelta(days=50), TODAY - timedelta(days=2))


def test_a_snapshot_of_another_month_still_gives_the_same_figures(books):
    last_month = TODAY.replace(day=1) - timedelta(days=1)
    older = take(last_month)

    assert everything(older) == everything(None)


def test_the_page_is_the_same_with_and_without_a_snapshot(books, client):
    db.session.commit()  # the request's own session sees the gifts (the test's transaction still rolls back)
    staff = signed_in(client, "accountant")

    def page() -> str:
        html = staff.get("/staff/").get_data(as_text=True)
        return re.sub(r'name="csrf_token"[^>]*value="[^"]*"', "", html)

    without = page()
    assert snapshot_dashboard()["taken"] == 1
    assert db.session.scalar(select(func.count()).select_from(DashboardSnapshot)) == 1

    assert page() == without
    assert "Spring appeal" in without and "/news/one" in without


def test_the_job_takes_one_snapshot_a_day_and_deletes_the_older_ones(books):
    take(TODAY - timedelta(days=2))
    db.session.commit()

    assert snapshot_dashboard() == {"taken": 1, "deleted": 1}
    assert snapshot_dashboard() == {"taken": 0, "deleted": 0}

    days = list(db.session.scalars(select(DashboardSnapshot.day)))
    assert len(days) == 1 and days[0] >= TODAY  # the job's day is UTC's; the page takes the latest up to today
    snapshot_id = db.session.scalar(select(DashboardSnapshot.id))
    articles = db.session.scalars(select(DashboardSnapshotArticle.snapshot_id)).all()
    assert articles and set(articles) == {snapshot_id}


def test_without_any_snapshot_the_page_reads_the_donations(books):
    assert ops.latest_snapshot(TODAY) is None
    take(TODAY + timedelta(days=1))  # a day ahead of this server's date: never used

    assert ops.latest_snapshot(TODAY) is None


def test_the_top_articles_stay_exact_among_many_when_live_gifts_reorder_them(campaigns):
    """Forty articles, so that the page reads only the snapshot's first places: live gifts lift an article from
    the bottom to the top, push one from sixth to fifth, and bring a new one; two articles tie at fifth place
    with names whose order depends on the collation ("/Zeta" before "/alpha" by code point)."""
    person = Supporter(email="many@example.com")
    db.session.add(person)
    for n in range(40):
        gift(person, 1000 + 37 * n, "EUR", 10 + n % 30, article=f"/story/{n:02d}")
    for url in ("/Zeta", "/alpha"):  # tie between themselves, just below /story/39 … /story/36
        gift(person, 1000 + 37 * 35 + 1, "EUR", 12, article=url)
    gift(person, 500, "USD", 15, article="/story/00")
    snapshot = take()
    before = everything(snapshot)["articles"]["EUR"]
    assert [url for url, _ in before] == ["/story/39", "/story/38", "/story/37", "/story/36", "/Zeta"]

    gift(person, 90000, "EUR", 0, article="/story/00")  # from the bottom to the top
    gift(person, 40, "EUR", 0, article="/story/35")  # from below the tie to above it
    gift(person, 1000 + 37 * 37 + 5, "EUR", 0, article="/story/new")  # new, between 38 and 37
    late = gift(person, 30, "EUR", 25, article="/alpha")  # booked late: /alpha passes /Zeta
    db.session.flush()

    live = everything(None)
    assert everything(snapshot) == live
    assert [url for url, _ in live["articles"]["EUR"]] == [
        "/story/00", "/story/39", "/story/38", "/story/new", "/story/37"]
    assert live["articles"]["USD"] == [("/story/00", 500)]
    assert late.id > snapshot.watermark
