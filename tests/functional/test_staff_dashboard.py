"""The dashboard: figures per currency (never summed across currencies), SVG charts with text
alternatives, and a chosen date range as an extra column."""
from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest

from donations.extensions import db
from donations.ledger.models import Donation, Frequency, RecurringDonation, RecurringStatus, Supporter
from tests.dates import days_around
from tests.factories import event, post_event
from tests.staff_helpers import in_app, signed_in, webhook_gift


@pytest.fixture
def gifts(client) -> list[date]:
    """Three gifts paid today through the webhook: €25.00 and €10.00, and $30.00. Returns the UTC days
    before and after paying them (the same day, unless midnight passed)."""
    with days_around() as days:
        webhook_gift(client, 2500, "EUR", email="one@example.com")
        webhook_gift(client, 1000, "EUR", email="two@example.com")
        webhook_gift(client, 3000, "USD", email="three@example.com")
    return days


@pytest.fixture
def staff(client):
    return signed_in(client, "accountant")  # the dashboard is for every role; the least one is enough


def dashboard(staff, **query) -> str:
    response = staff.get("/staff/", query_string=query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def row(html: str, label: str) -> list[str]:
    """The cells of one figures row, one per period."""
    match = re.search(rf'<tr><th scope="row">{label}</th>(.*?)</tr>', html, re.S)
    assert match, label
    return re.findall(r"<td>(.*?)</td>", match.group(1), re.S)


def amounts(cell: str) -> list[str]:
    return re.findall(r'<span class="amount">([^<]+)</span>', cell)


def headers(html: str) -> list[str]:
    thead = re.search(r'<table class="history figures">\s*<thead>(.*?)</thead>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r'<th scope="col">(.*?)</th>', thead)]


def test_money_raised_is_shown_per_currency_and_never_summed(gifts, staff):
    html = dashboard(staff)

    cells = row(html, "Money raised")
    assert len(cells) == 3
    for cell in cells:  # today, this month, this year
        assert amounts(cell) == ["€35.00", "$30.00"]
    assert "65.00" not in html and "€65" not in html and "$65" not in html


def test_gift_count_counts_gifts_of_every_currency(gifts, staff):
    assert row(dashboard(staff), "Gifts") == ["3", "3", "3"]


def test_new_supporters_are_counted_on_their_first_gift(gifts, staff):
    assert row(dashboard(staff), "New supporters") == ["3", "3", "3"]


def test_monthly_recurring_revenue_is_per_currency(client, staff):
    with in_app(client.application):
        for n, (amount, currency, frequency) in enumerate([(1000, "EUR", Frequency.MONTHLY),
                                                           (12000, "USD", Frequency.YEARLY)]):
            person = Supporter(email=f"r{n}@example.com")
            db.session.add(person)
            db.session.add(RecurringDonation(supporter=person, amount=amount, currency=currency, frequency=frequency,
                                             status=RecurringStatus.ACTIVE, stripe_subscription_id=f"sub_r{n}"))
        db.session.commit()

    now = re.search(r'<p id="recurring-now">(.*?)</p>', dashboard(staff), re.S).group(1)

    assert amounts(now) == ["€10.00", "$10.00"]  # the yearly gift as a twelfth per month
    assert "<strong>2</strong> active recurring supporters" in now


def test_an_empty_ledger_shows_dashes(staff):
    html = dashboard(staff)
    assert row(html, "Money raised") == ["—", "—", "—"]
    assert row(html, "Gifts") == ["0", "0", "0"]


def test_charts_are_svg_with_a_title_as_text_alternative(gifts, staff):
    html = dashboard(staff)

    svgs = re.findall(r"<svg\b[^>]*>(.*?)</svg>", html, re.S)
    assert len(svgs) >= 4
    for tag in re.findall(r"<svg\b[^>]*>", html):
        assert 'role="img"' in tag
    for body in svgs:
        title = re.match(r"<title>([^<]+)</title><desc>", body)
        assert title and title.group(1).strip()
    titles = [re.match(r"<title>([^<]+)</title>", body).group(1) for body in svgs]
    assert "Money raised per month, EUR (last 12 months)" in titles
    assert "Money raised per month, USD (last 12 months)" in titles
    assert not any("EUR" in t and "USD" in t for t in titles)  # one currency per chart
    assert "<script" not in "".join(svgs)


def test_chart_descriptions_carry_the_figures(gifts, staff):
    html = dashboard(staff)
    desc = re.search(r"<title>Money raised per month, EUR \(last 12 months\)</title><desc>([^<]*)</desc>", html)
    assert desc and any(f"{day:%Y-%m}: €35.00" in desc.group(1) for day in gifts)  # the month they were paid in


def test_a_chosen_range_adds_a_column(gifts, staff):
    start, end = date.today() - timedelta(days=6), date.today()

    html = dashboard(staff, **{"from": start.isoformat(), "to": end.isoformat()})

    assert headers(html)[1:] == ["Today", "This month", "Year to date", f"{start} – {end}"]
    assert amounts(row(html, "Money raised")[3]) == ["€35.00", "$30.00"]
    assert f"Money raised per day, EUR ({start} – {end})" in html


def test_without_a_range_there_are_three_columns(gifts, staff):
    assert headers(dashboard(staff))[1:] == ["Today", "This month", "Year to date"]


def test_a_range_in_the_past_shows_nothing_raised(gifts, staff):
    html = dashboard(staff, **{"from": "2020-01-01", "to": "2020-01-31"})

    assert headers(html)[-1] == "2020-01-01 – 2020-01-31"
    assert row(html, "Money raised")[3] == "—"


@pytest.mark.parametrize("query", [{"from": "2026-02-01", "to": "2026-01-01"}, {"from": "yesterday", "to": "x"},
                                   {"from": "2026-01-01"}])
def test_a_backwards_or_broken_range_is_ignored(gifts, staff, query):
    assert len(headers(dashboard(staff, **query))) == 4  # the corner (named for screen readers only) and three periods


def refund_event(client, donation_id: int, total_refunded: int, days_ago: int) -> None:
    """Stripe's charge.refunded with the running total, as it was ``days_ago`` days ago."""
    with in_app(client.application):
        gift = db.session.get(Donation, donation_id)
        charge = {"id": f"ch_{gift.stripe_payment_intent_id}", "object": "charge", "amount": gift.amount,
                  "currency": gift.currency.lower(), "payment_intent": gift.stripe_payment_intent_id,
                  "amount_refunded": total_refunded, "refunded": total_refunded == gift.amount, "livemode": False}
    created = int(time.time()) - days_ago * 86400
    assert post_event(client, event("charge.refunded", charge, created=created)).status_code == 200


def test_refunds_of_today_are_shown_per_currency(client, staff):
    gift = webhook_gift(client, 2500, "EUR")
    refund_event(client, gift, 1000, days_ago=0)

    assert amounts(row(dashboard(staff), "Refunds")[0]) == ["€10.00"]


def test_each_refund_counts_in_the_period_it_was_made(client, staff):
    gift = webhook_gift(client, 2500, "EUR")
    refund_event(client, gift, 1000, days_ago=3)  # €10.00 three days ago
    refund_event(client, gift, 1500, days_ago=0)  # €5.00 more today
    earlier = date.today() - timedelta(days=3)

    html = dashboard(staff, **{"from": earlier.isoformat(), "to": earlier.isoformat()})

    assert amounts(row(html, "Refunds")[0]) == ["€5.00"]  # today
    assert amounts(row(html, "Refunds")[3]) == ["€10.00"]  # three days ago
