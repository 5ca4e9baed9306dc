"""/staff/articles: the ask's conversion per article, section and author, with money per currency, and its CSV."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from html import unescape

import pytest
from sqlalchemy import select

from donations.campaigns.models import Article, AskCount
from donations.checkout.operations import start_donation
from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus
from tests.factories import checkout_session, default_campaign, donation_request, event, post_event
from tests.staff_helpers import in_app, signed_in

A = "https://publisher.example/politics/vote"
B = "https://publisher.example/politics/budget"
C = "https://publisher.example/culture/opera"


def today():
    return datetime.now(timezone.utc).date()


def gift(client, url: str, amount: int, currency: str) -> int:
    """A paid gift started from the ask on ``url``, booked through the real webhook; returns its id."""
    with in_app(client.application):
        attempt = start_donation(donation_request(amount=amount, currency=currency, article_url=url))
        db.session.commit()
        session = checkout_session(attempt)
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    with in_app(client.application):
        return db.session.scalars(select(Donation.id).where(Donation.stripe_checkout_session_id == session["id"])).one()


@pytest.fixture
def world(client):
    """Three articles seen by the ask, gifts to two of them in EUR and USD, and gifts that do not count."""
    app = client.application
    with in_app(app):
        campaign = default_campaign()
        control = campaign.variants[0].id
        meta = {A: ("Politics", "Ada", "=HYPERLINK(\"http://evil.example\")"), B: ("Politics", "Bob", "Budget"),
                C: ("Culture", "Ada", "Opera")}
        ids = {}
        for url, (section, author, title) in meta.items():
            article = Article(url=url, section=section, author=author, title=title)
            db.session.add(article)
            db.session.flush()
            ids[url] = article.id
        for url, impressions, clicks, day in [(A, 1000, 50, today()), (B, 200, 4, today() - timedelta(days=3)),
                                              (C, 100, 1, today()), (A, 5000, 500, today() - timedelta(days=60))]:
            db.session.add(AskCount(day=day, campaign_id=campaign.id, variant_id=control, article_id=ids[url],
                                    impressions=impressions, clicks=clicks))
        db.session.commit()
    for url, amount, currency in [(A, 2500, "EUR"), (A, 1000, "EUR"), (A, 3000, "USD"), (B, 1500, "USD")]:
        gift(client, url, amount, currency)
    refunded = gift(client, B, 9900, "EUR")
    renewal = gift(client, C, 5000, "EUR")
    with in_app(app):
        db.session.get(Donation, refunded).status = DonationStatus.REFUNDED
        db.session.get(Donation, renewal).attempt_id = None  # a payment no checkout started: not a gift
        db.session.commit()
    return ids


def table(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [[" ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_articles_show_impressions_clicks_gifts_conversion_and_money_per_currency(client, world):
    staff = signed_in(client, "staff")
    response = staff.get("/staff/articles")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert table(html, "articles") == [
        ['=HYPERLINK("http://evil.example")', "Politics", "Ada", "1000", "50", "3", "0.30%", "€35.00 $30.00"],
        ["Budget", "Politics", "Bob", "200", "4", "1", "0.50%", "$15.00"],
        ["Opera", "Culture", "Ada", "100", "1", "0", "0.00%", "—"],
    ]
    assert "<svg" in html and "Top articles by impressions" in html


def test_totals_per_section_and_author_never_add_currencies(client, world):
    html = signed_in(client, "accountant").get("/staff/articles").get_data(as_text=True)

    assert table(html, "by-section") == [
        ["Politics", "1200", "54", "4", "0.33%", "€35.00 $45.00"],
        ["Culture", "100", "1", "0", "0.00%", "—"],
    ]
    assert table(html, "by-author") == [
        ["Ada", "1100", "51", "3", "0.27%", "€35.00 $30.00"],
        ["Bob", "200", "4", "1", "0.50%", "$15.00"],
    ]


@pytest.mark.parametrize("query, first", [
    ("sort=conversion", "Budget"), ("sort=gifts", '=HYPERLINK("http://evil.example")'), ("sort=clicks&to=", None),
    ("sort=money&currency=USD", '=HYPERLINK("http://evil.example")'), ("section=Culture", "Opera"),
    ("author=Bob", "Budget"),
])
def test_sorting_and_filters(client, world, query, first):
    rows = table(signed_in(client, "admin").get(f"/staff/articles?{query}").get_data(as_text=True), "articles")

    assert rows[0][0] == (first or '=HYPERLINK("http://evil.example")')
    if "section" in query or "author" in query:
        assert len(rows) == 1


def test_a_range_without_today_leaves_todays_counts_and_gifts_out(client, world):
    start, end = today() - timedelta(days=61), today() - timedelta(days=1)
    rows = table(signed_in(client, "staff").get(f"/staff/articles?from={start}&to={end}").get_data(as_text=True),
                 "articles")

    assert rows == [['=HYPERLINK("http://evil.example")', "Politics", "Ada", "5000", "500", "0", "0.00%", "—"],
                    ["Budget", "Politics", "Bob", "200", "4", "0", "0.00%", "—"]]


def test_pages_of_articles(client, world, monkeypatch):
    from donations.reports import articles

    monkeypatch.setattr(articles, "PAGE", 2)
    staff = signed_in(client, "staff")
    first = staff.get("/staff/articles").get_data(as_text=True)
    second = staff.get("/staff/articles?page=2").get_data(as_text=True)

    assert [r[0] for r in table(first, "articles")] == ['=HYPERLINK("http://evil.example")', "Budget"]
    assert "Next page" in first
    assert [r[0] for r in table(second, "articles")] == ["Opera"]
    assert "Next page" not in second and "Previous page" in second


def test_csv_has_the_same_rows_with_a_column_per_currency_and_defused_text(client, world):
    response = signed_in(client, "accountant").get("/staff/articles?format=csv&sort=conversion")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert 'filename="articles-' in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["article_url", "title", "section", "author", "impressions", "clicks", "gifts", "conversion_rate",
         "raised_EUR", "raised_USD", "raised_GBP"],
        [B, "Budget", "Politics", "Bob", "200", "4", "1", "0.005000", "", "15.00", ""],
        [A, "'=HYPERLINK(\"http://evil.example\")", "Politics", "Ada", "1000", "50", "3", "0.003000", "35.00",
         "30.00", ""],
        [C, "Opera", "Culture", "Ada", "100", "1", "0", "0.000000", "", "", ""],
    ]


@pytest.mark.parametrize("query, message", [
    ("from=yesterday", "From: choose a day as YYYY-MM-DD."),
    ("from=2026-02-01&to=2026-01-01", "The first day is after the last day."),
    ("campaign=999999", "No campaign has this id."),
    ("campaign=abc", "No campaign has this id."),
    ("sort=name", "Sort by one of: impressions, clicks, gifts, conversion, money."),
    ("currency=XXX", "Currency: one of EUR, USD, GBP."),
])
def test_bad_choices_are_a_400_that_says_why(client, query, message):
    response = signed_in(client, "staff").get(f"/staff/articles?{query}")

    assert response.status_code == 400
    assert message in unescape(response.get_data(as_text=True))


def test_an_empty_range_says_so(client):
    html = signed_in(client, "staff").get("/staff/articles?from=2020-01-01&to=2020-01-31").get_data(as_text=True)

    assert "No impressions or gifts in this range." in html


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/staff/articles")

    assert response.status_code in (302, 303)
    assert "/staff/login" in response.headers["Location"]
