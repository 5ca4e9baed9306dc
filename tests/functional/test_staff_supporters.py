"""Supporters: search by address prefix, name and Stripe ids; filters; keyset pagination; the timeline;
resending a receipt to the supporter's current address."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from html import unescape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from donations.campaigns.models import Campaign
from donations.extensions import db
from donations.ledger.models import (
    Donation,
    DonationStatus,
    Frequency,
    RecurringDonation,
    RecurringStatus,
    Supporter,
)
from donations.mail.models import OutboxEmail
from donations.money import Money
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.staff_helpers import count, default_campaign_id, in_app, sandbox_gift, signed_in, webhook_gift


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)


def add_person(email, name=None, *, customer=None, gifts=(), recurring=None):
    """A supporter with gifts ``(amount, currency, paid day, campaign_id, extra fields)`` and a recurring gift."""
    person = Supporter(email=email, name=name, stripe_customer_id=customer)
    db.session.add(person)
    plan = None
    if recurring:
        status, currency, sub = recurring
        plan = RecurringDonation(supporter=person, amount=1000, currency=currency, frequency=Frequency.MONTHLY,
                                 status=status, stripe_subscription_id=sub)
        db.session.add(plan)
    for amount, currency, day, campaign_id, extra in gifts:
        db.session.add(Donation(supporter=person, amount=amount, currency=currency, campaign_id=campaign_id,
                                frequency=Frequency.MONTHLY if plan else Frequency.ONE_OFF,
                                recurring_donation=plan, status=DonationStatus.SUCCEEDED, paid_at=at(day), **extra))
    return person


@pytest.fixture
def people(client) -> dict:
    app = client.application
    default = default_campaign_id(app)
    with in_app(app):
        spring = Campaign(slug="spring", name="Spring appeal", headline="Spring", body="Give", button_label="Give",
                          presets={}, default_frequency=Frequency.ONE_OFF)
        db.session.add(spring)
        db.session.flush()
        add_person("ada.lovelace@example.com", "Ada Lovelace", customer="cus_ada",
                   gifts=[(2500, "EUR", "2026-01-15", default,
                           {"stripe_payment_intent_id": "pi_ada", "stripe_checkout_session_id": "cs_ada"})])
        add_person("ben@example.org", "Ben Okri", recurring=(RecurringStatus.ACTIVE, "USD", "sub_ben"),
                   gifts=[(1000, "USD", "2026-03-10", spring.id,
                           {"stripe_invoice_id": "in_ben", "stripe_subscription_id": "sub_ben"})])
        add_person("cara@example.net", "Cara Nadar", recurring=(RecurringStatus.PAST_DUE, "EUR", "sub_cara"),
                   gifts=[(1000, "EUR", "2025-06-01", default, {"stripe_invoice_id": "in_cara"})])
        add_person("dan@example.com", None, recurring=(RecurringStatus.CANCELED, "GBP", "sub_dan"),
                   gifts=[(1000, "GBP", "2025-12-31", default, {"stripe_invoice_id": "in_dan"})])
        add_person("bada@example.com", "Bada", gifts=[(5000, "GBP", "2025-12-30", default, {})])
        add_person("no_gift@example.com", "Percent 100% Sure")
        db.session.commit()
        return {"spring": spring.id}


@pytest.fixture
def staff(client):
    return signed_in(client, "staff")


ROW = re.compile(r'<tr><td><a href="/staff/supporters/(\d+)">([^<]+)</a>')


def emails(staff, **query) -> list[str]:
    html = staff.get("/staff/supporters", query_string=query).get_data(as_text=True)
    return sorted(unescape(email) for _, email in ROW.findall(html))


# -- search -----------------------------------------------------------------------------------------

def test_search_by_email_prefix(people, staff):
    assert emails(staff, q="ben@") == ["ben@example.org"]
    assert emails(staff, q="ADA.L") == ["ada.lovelace@example.com"]


def test_search_by_email_matches_the_start_only(people, staff):
    assert emails(staff, q="example.com") == []


def test_search_by_name_anywhere_in_it_whatever_the_case(people, staff):
    assert emails(staff, q="okri") == ["ben@example.org"]
    assert emails(staff, q="ada") == ["ada.lovelace@example.com", "bada@example.com", "cara@example.net"]


def test_search_wildcards_are_taken_literally(people, staff):
    assert emails(staff, q="%") == ["no_gift@example.com"]  # "100%" in the name, not "anything"
    assert emails(staff, q="no_") == ["no_gift@example.com"]
    assert emails(staff, q="n_") == []


@pytest.mark.parametrize("stripe_id, email", [
    ("cus_ada", "ada.lovelace@example.com"),
    ("pi_ada", "ada.lovelace@example.com"),
    ("cs_ada", "ada.lovelace@example.com"),
    ("in_ben", "ben@example.org"),
    ("sub_ben", "ben@example.org"),
    ("sub_cara", "cara@example.net"),  # on the recurring gift only
])
def test_search_by_stripe_id(people, staff, stripe_id, email):
    assert emails(staff, q=stripe_id) == [email]


def test_search_by_a_partial_stripe_id_finds_nothing(people, staff):
    assert emails(staff, q="cus_") == []


# -- filters --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, expected", [
    ("one_off", ["ada.lovelace@example.com", "bada@example.com"]),
    ("recurring", ["ben@example.org"]),
    ("past_due", ["cara@example.net"]),
    ("canceled", ["dan@example.com"]),
])
def test_filter_by_kind(people, staff, kind, expected):
    assert emails(staff, kind=kind) == expected


def test_filter_by_campaign(people, staff):
    assert emails(staff, campaign=people["spring"]) == ["ben@example.org"]


@pytest.mark.parametrize("currency, expected", [
    ("USD", ["ben@example.org"]),
    ("GBP", ["bada@example.com", "dan@example.com"]),
])
def test_filter_by_currency(people, staff, currency, expected):
    assert emails(staff, currency=currency) == expected


def test_filter_by_date_range_includes_both_days(people, staff):
    assert emails(staff, **{"from": "2026-01-01", "to": "2026-12-31"}) == ["ada.lovelace@example.com",
                                                                           "ben@example.org"]
    assert emails(staff, **{"from": "2025-12-31", "to": "2025-12-31"}) == ["dan@example.com"]


def test_filters_combine(people, staff):
    assert emails(staff, kind="one_off", currency="GBP") == ["bada@example.com"]
    assert emails(staff, q="ada", currency="EUR") == ["ada.lovelace@example.com", "cara@example.net"]


def test_nonsense_filters_are_ignored(people, staff):
    everyone = emails(staff)
    assert len(everyone) == 6
    assert emails(staff, kind="weird", currency="XYZ", campaign="abc", **{"from": "soon"}) == everyone


def test_no_match_says_so(people, staff):
    assert "No supporter matches." in staff.get("/staff/supporters?q=nobody").get_data(as_text=True)


# -- keyset pagination ----------------------------------------------------------------------------

def next_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)">Next page</a>', html)
    return unescape(match.group(1)) if match else None


@pytest.fixture
def many(client) -> list[str]:
    with in_app(client.application):
        for n in range(55):
            db.session.add(Supporter(email=f"page{n:02d}@example.org", name=f"Paged {n}"))
        db.session.commit()
    return [f"page{n:02d}@example.org" for n in range(55)]


def test_more_than_50_supporters_get_a_next_page_without_overlap(many, staff):
    first = staff.get("/staff/supporters").get_data(as_text=True)
    first_rows = [email for _, email in ROW.findall(first)]
    link = next_link(first)

    assert len(first_rows) == 50 and link
    second = staff.get(link).get_data(as_text=True)
    second_rows = [email for _, email in ROW.findall(second)]

    assert len(second_rows) == 5
    assert not set(first_rows) & set(second_rows)
    assert sorted(first_rows + second_rows) == many
    assert next_link(second) is None
    assert first_rows[0] == "page54@example.org"  # newest first


def test_next_page_keeps_the_search(many, staff, client):
    with in_app(client.application):
        db.session.add(Supporter(email="other@example.org", name="Someone else"))
        db.session.commit()

    first = staff.get("/staff/supporters?q=page").get_data(as_text=True)
    link = next_link(first)
    assert urlsplit(link).path == "/staff/supporters" and "q=page" in link
    assert [email for _, email in ROW.findall(staff.get(link).get_data(as_text=True))] == [
        f"page{n:02d}@example.org" for n in range(4, -1, -1)]


def test_exactly_50_supporters_have_no_next_page(client, staff):
    with in_app(client.application):
        for n in range(50):
            db.session.add(Supporter(email=f"p{n}@example.org"))
        db.session.commit()

    assert next_link(staff.get("/staff/supporters").get_data(as_text=True)) is None


# -- the supporter's page -------------------------------------------------------------------------

def test_supporter_page_shows_gifts_recurring_gifts_and_emails(client, staff):
    gift = webhook_gift(client, email="reader@example.com")
    with in_app(client.application):
        supporter = db.session.get(Donation, gift).supporter_id

    html = staff.get(f"/staff/supporters/{supporter}").get_data(as_text=True)

    assert "reader@example.com" in html and "€25.00" in html
    assert f'href="/staff/donations/{gift}"' in html
    with in_app(client.application):
        subject = db.session.scalars(select(OutboxEmail.subject)).one()
    assert f"<td>{subject}</td>" in html  # the receipt, under "Emails sent"
    assert f'action="/staff/supporters/{supporter}/donations/{gift}/resend"' in html


def test_accountant_sees_no_resend_or_cancel_buttons(client, people):
    accountant = signed_in(client, "accountant")
    with in_app(client.application):
        ben = db.session.scalars(select(Supporter).where(Supporter.email == "ben@example.org")).one()
        ben_id, plan = ben.id, ben.recurring_donations[0].id

    html = accountant.get(f"/staff/supporters/{ben_id}").get_data(as_text=True)

    assert f'id="recurring-{plan}" data-status="active"' in html
    assert "/resend" not in html and "/cancel" not in html


def test_unknown_supporter_is_404(staff):
    assert staff.get("/staff/supporters/999999").status_code == 404


# -- resending a receipt --------------------------------------------------------------------------

@pytest.fixture
def moved(client) -> tuple[int, int]:
    """A paid gift whose supporter has since changed address; returns (supporter id, donation id)."""
    gift = webhook_gift(client, email="old@example.com")
    with in_app(client.application):
        donation = db.session.get(Donation, gift)
        donation.supporter.email = "new@example.com"
        db.session.commit()
        return donation.supporter_id, gift


def outbox(app) -> list[tuple[str, str, str]]:
    with in_app(app):
        return [(e.to_address, e.dedupe_key, e.template)
                for e in db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id))]


def test_resend_queues_a_new_email_to_the_supporters_current_address(client, staff, moved):
    supporter, gift = moved

    response = staff.post(f"/staff/supporters/{supporter}/donations/{gift}/resend")

    assert response.status_code == 303
    assert outbox(client.application) == [("old@example.com", f"receipt:{gift}", "receipt"),
                                          ("new@example.com", f"receipt:{gift}:resend:1", "receipt")]
    page = staff.get(urlsplit(response.headers["Location"]).path).get_data(as_text=True)
    assert "is on its way to new@example.com" in page


def test_each_resend_is_a_new_email(client, staff, moved):
    supporter, gift = moved

    for _ in range(3):
        staff.post(f"/staff/supporters/{supporter}/donations/{gift}/resend")

    assert [key for _, key, _ in outbox(client.application)] == [
        f"receipt:{gift}", f"receipt:{gift}:resend:1", f"receipt:{gift}:resend:2", f"receipt:{gift}:resend:3"]


def test_resent_receipt_carries_the_same_receipt_number(client, staff, moved):
    supporter, gift = moved
    staff.post(f"/staff/supporters/{supporter}/donations/{gift}/resend")

    with in_app(client.application):
        number = db.session.get(Donation, gift).receipt_number
        resent = db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_address == "new@example.com")).one()
        assert number and number in resent.body_text


def test_a_gift_without_a_receipt_cannot_be_resent(client, staff):
    with in_app(client.application):
        attempt = make_attempt(email="pending@example.com")
        db.session.commit()
        session = checkout_session(attempt, payment_status="unpaid")
    post_event(client, event("checkout.session.completed", session))
    with in_app(client.application):
        pending = db.session.scalars(select(Donation)).one()
        supporter, gift = pending.supporter_id, pending.id

    response = staff.post(f"/staff/supporters/{supporter}/donations/{gift}/resend")

    assert response.status_code == 303
    assert "This donation has no receipt" in staff.get(f"/staff/supporters/{supporter}").get_data(as_text=True)
    assert count(client.application, OutboxEmail) == 0


def test_resend_for_another_supporters_gift_is_404(client, staff, moved):
    _, gift = moved
    other = webhook_gift(client, email="someone.else@example.com")
    with in_app(client.application):
        other_supporter = db.session.get(Donation, other).supporter_id

    response = staff.post(f"/staff/supporters/{other_supporter}/donations/{gift}/resend")

    assert response.status_code == 404
    assert count(client.application, OutboxEmail) == 2  # the two original receipts


# -- cancelling a recurring gift ------------------------------------------------------------------

@pytest.mark.parametrize("when, status, at_period_end, said", [
    ("period_end", RecurringStatus.ACTIVE, True, "The recurring gift ends at the end of the period already paid "
                                                 "for; nothing more will be charged."),
    ("now", RecurringStatus.CANCELED, False, "The recurring gift is cancelled;"),
])
def test_staff_cancel_a_recurring_gift_and_the_supporter_is_told(client, staff, when, status, at_period_end, said):
    payment = sandbox_gift(client.application, "10.00", email="monthly@example.com", frequency="monthly")
    with in_app(client.application):
        gift = db.session.get(Donation, payment)
        supporter, plan = gift.supporter_id, gift.recurring_donation_id

    response = staff.post(f"/staff/supporters/{supporter}/recurring/{plan}/cancel", {"when": when})

    assert response.status_code == 303
    with in_app(client.application):
        recurring = db.session.get(RecurringDonation, plan)
        assert (recurring.status, recurring.cancel_at_period_end) == (status, at_period_end)
    assert [(to, template) for to, _, template in outbox(client.application)] == [
        ("monthly@example.com", "receipt"), ("monthly@example.com", "recurring_canceled")]
    assert said in unescape(staff.get(response.headers["Location"]).get_data(as_text=True))


def test_a_cancelled_gift_cannot_be_cancelled_again(client, staff, people):
    with in_app(client.application):
        dan = db.session.scalars(select(Supporter).where(Supporter.email == "dan@example.com")).one()
        supporter, plan = dan.id, dan.recurring_donations[0].id

    response = staff.post(f"/staff/supporters/{supporter}/recurring/{plan}/cancel", {"when": "now"})

    assert response.status_code == 303
    assert count(client.application, OutboxEmail) == 0
    assert f'id="recurring-{plan}" data-status="canceled"' in staff.get(
        f"/staff/supporters/{supporter}").get_data(as_text=True)


# -- the donation's page ------------------------------------------------------------------------------

def donation_page(client, staff, **fields) -> str:
    with in_app(client.application):
        person = Supporter(email=f"fees-{fields['currency'].lower()}@example.org")
        gift = Donation(supporter=person, frequency=Frequency.ONE_OFF, status=DonationStatus.SUCCEEDED,
                        paid_at=at("2026-11-02"), **fields)
        db.session.add_all([person, gift])
        db.session.commit()
        gift_id = gift.id
    return unescape(staff.get(f"/staff/donations/{gift_id}").get_data(as_text=True))


def test_the_covered_fee_fee_and_net_are_shown_as_money(client, staff):
    html = donation_page(client, staff, amount=2564, currency="EUR", covered_fee=64, fee=64, net=2500,
                         settlement_currency="EUR", amount_refunded=100)

    assert "€25.64 (of which €0.64 covering the fee)" in html
    assert '<td id="stripe-fee">€0.64</td>' in html and '<td id="net">€25.00</td>' in html
    assert '<td id="refunded">€1.00</td>' in html


def test_a_gift_settled_in_another_currency_shows_fee_and_net_in_that_currency(client, staff):
    html = donation_page(client, staff, amount=2000, currency="JPY", covered_fee=0, fee=45, net=1155,
                         settlement_currency="EUR", exchange_rate="0.006")

    assert "¥2,000" in html and "covering the fee" not in html
    assert '<td id="stripe-fee">€0.45</td>' in html
    assert '<td id="net">€11.55 (settled in EUR at 0.006)</td>' in html


# -- a recurring gift's history ----------------------------------------------------------------------

def changed_gift(client, staff) -> tuple[int, int]:
    """A €10.41 monthly gift (sandbox) that the supporter raised to €12.50 and the staff set to end at
    period end; returns (supporter id, recurring gift id)."""
    from donations.accounts import operations as account

    payment = sandbox_gift(client.application, "10.41", email="history@example.com", frequency="monthly")
    with in_app(client.application):
        gift = db.session.get(Donation, payment)
        supporter, plan = gift.supporter_id, gift.recurring_donation_id
        account.change(db.session.get(RecurringDonation, plan), Money(1250, "EUR"), Frequency.MONTHLY, "t1")
        db.session.commit()
    assert staff.post(f"/staff/supporters/{supporter}/recurring/{plan}/cancel",
                      {"when": "period_end"}).status_code == 303
    return supporter, plan


def history(html: str, plan: int) -> list[str]:
    section = html.split(f'id="recurring-{plan}"', 1)[1].split("</section>", 1)[0]
    return [re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", item))).strip()
            for item in re.findall(r"<li>(.*?)</li>", section, re.S)]


def test_the_history_shows_amounts_as_money_and_the_cancellation_in_words(client, staff):
    supporter, plan = changed_gift(client, staff)

    html = staff.get(f"/staff/supporters/{supporter}").get_data(as_text=True)

    lines = [line.split(" · ", 1)[1] for line in history(html, plan)]
    assert "Started: €10.41 every month" in lines
    assert "Amount: €10.41 → €12.50" in lines
    assert "Cancellation: continues → will end at period end" in lines
    assert "Status: incomplete → active" in lines
    assert not any(word in " ".join(lines) for word in ("1041", "1250", "True", "False", "10.41 EUR", "_"))


def test_history_names_frequencies_pauses_and_statuses_and_keeps_each_amount_s_currency(client, staff):
    from donations.ledger.models import RecurringChange

    with in_app(client.application):
        person = Supporter(email="changes@example.org")
        plan = RecurringDonation(supporter=person, amount=1500, currency="USD", frequency=Frequency.YEARLY,
                                 status=RecurringStatus.CANCELED, stripe_subscription_id="sub_changes")
        db.session.add_all([person, plan])
        db.session.flush()
        for n, (what, old, new) in enumerate([
            ("started", None, "1000 JPY monthly"), ("amount", "1000", "1500"), ("currency", "JPY", "USD"),
            ("frequency", "monthly", "yearly"), ("paused_until", None, "2026-12-01"),
            ("paused_until", "2026-12-01", None), ("status", "active", "past_due"), ("status", "past_due", "canceled"),
        ]):
            day = 1 if what in ("amount", "currency") else n
            db.session.add(RecurringChange(recurring_donation_id=plan.id, at=at(f"2026-03-{day + 1:02d}"),
                                           what=what, old=old, new=new))
        db.session.commit()
        supporter, plan_id = person.id, plan.id

    lines = history(staff.get(f"/staff/supporters/{supporter}").get_data(as_text=True), plan_id)

    assert lines == [
        "2026-03-01 · Started: ¥1,000 every month",
        "2026-03-02 · Amount: ¥1,000 → $15.00",
        "2026-03-02 · Currency: JPY → USD",
        "2026-03-04 · Frequency: every month → every year",
        "2026-03-05 · Pause: not paused → paused until 2026-12-01",
        "2026-03-06 · Pause: paused until 2026-12-01 → not paused",
        "2026-03-07 · Status: active → past due",
        "2026-03-08 · Status: past due → cancelled",
    ]


def test_a_gift_that_already_ends_at_period_end_offers_cancel_now_only(client, staff):
    payment = sandbox_gift(client.application, "10.00", email="ending@example.com", frequency="monthly")
    with in_app(client.application):
        gift = db.session.get(Donation, payment)
        supporter, plan = gift.supporter_id, gift.recurring_donation_id

    def buttons() -> list[str]:
        html = staff.get(f"/staff/supporters/{supporter}").get_data(as_text=True)
        section = html.split(f'id="recurring-{plan}"', 1)[1].split("</section>", 1)[0]
        return re.findall(r'<button type="submit" name="when" value="([a-z_]+)"', section)

    assert buttons() == ["period_end", "now"]
    staff.post(f"/staff/supporters/{supporter}/recurring/{plan}/cancel", {"when": "period_end"})

    assert buttons() == ["now"]
    assert ", nothing more will be charged" in staff.get(f"/staff/supporters/{supporter}").get_data(as_text=True)
    response = staff.post(f"/staff/supporters/{supporter}/recurring/{plan}/cancel", {"when": "now"})
    assert response.status_code == 303
    with in_app(client.application):
        assert db.session.get(RecurringDonation, plan).status is RecurringStatus.CANCELED


def test_a_gift_cancelled_at_period_end_shows_staff_the_day_it_ends_as_the_supporter_sees_it(client, staff):
    with in_app(client.application):
        person = add_person("eve@example.com", "Eve", recurring=(RecurringStatus.ACTIVE, "EUR", "sub_eve"))
        plan = person.recurring_donations[0]
        plan.cancel_at_period_end = True
        plan.current_period_end = at("2026-12-27")
        db.session.commit()
        person_id = person.id

    html = staff.get(f"/staff/supporters/{person_id}").get_data(as_text=True)

    assert "active · ends on 27 December 2026, nothing more will be charged" in html
