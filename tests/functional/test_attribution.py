"""A gift names the ask that brought it: the campaign's A/B variant and the article, from the donation link
(or the API) to the attempt, the booked donation and the recurring gift."""
from __future__ import annotations

from dataclasses import replace
from html import unescape
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import select

from donations.campaigns.models import Article, Campaign, CampaignVariant
from donations.checkout.models import CheckoutAttempt
from donations.checkout.operations import start_donation
from donations.extensions import db
from donations.ledger.models import Donation, Frequency, RecurringDonation
from tests.factories import checkout_session, donation_request, event, post_event
from tests.functional.helpers import hidden_value
from tests.functional.test_recurring_webhooks import checkout_completed, deliver, donations_of, recurring_of
from tests.recurring_payloads import MONTHS, Gift
from tests.staff_helpers import in_app

ARTICLE = "https://publisher.example/politics/vote?utm_source=newsletter&sid=42#comments"
COUNTED = "https://publisher.example/politics/vote?utm_source=newsletter"


@pytest.fixture
def variants(client) -> dict[str, int]:
    """The default campaign's control "a", an active "b" and a paused "c"; their ids by key."""
    with in_app(client.application):
        campaign = db.session.scalars(select(Campaign).where(Campaign.slug == "default")).one()
        db.session.add_all([CampaignVariant(campaign=campaign, key="b", name="Shorter", weight=1),
                            CampaignVariant(campaign=campaign, key="c", name="Paused", weight=1, active=False)])
        db.session.commit()
        return {v.key: v.id for v in campaign.variants}


def donate_through_the_form(client, variant: str, frequency: str = "one_off", amount: str = "25.00",
                            email: str = "reader@example.com") -> str:
    """A reader follows the embed's donation link, submits the form and is sent to checkout; returns the
    path of the (sandbox) checkout page."""
    link = "/donate?" + urlencode({"campaign": "default", "variant": variant, "article_url": ARTICLE,
                                   "frequency": frequency, "currency": "EUR"})
    html = client.get(link).get_data(as_text=True)
    assert hidden_value(html, "variant") == variant
    form = {name: unescape(hidden_value(html, name)) for name in ("csrf_token", "token", "campaign", "variant", "article_url")}
    form.update(amount=amount, custom_amount="", currency="EUR", frequency=frequency, email=email, name="Ada")
    response = client.post("/donate", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    return urlsplit(response.headers["Location"]).path


def pay_in_the_sandbox(client, path: str) -> None:
    html = client.get(path).get_data(as_text=True)
    paid = client.post(path, data={"csrf_token": hidden_value(html, "csrf_token"), "card_number": "4242424242424242"})
    assert paid.status_code == 303, paid.get_data(as_text=True)


def latest_attempt() -> CheckoutAttempt:
    return db.session.scalars(select(CheckoutAttempt).order_by(CheckoutAttempt.created_at.desc())).first()


def article_id(url: str) -> int:
    return db.session.scalars(select(Article.id).where(Article.url == url)).one()


def test_a_one_off_gift_from_the_donation_link_names_its_variant_and_article(client, variants):
    pay_in_the_sandbox(client, donate_through_the_form(client, "b"))

    with in_app(client.application):
        attempt = latest_attempt()
        assert (attempt.variant_id, attempt.article_id) == (variants["b"], article_id(COUNTED))
        assert attempt.article_url == ARTICLE  # as the reader's page gave it; the article is the counted URL
        donation = db.session.scalars(select(Donation).where(Donation.attempt_id == attempt.id)).one()
        assert (donation.variant_id, donation.article_id) == (variants["b"], article_id(COUNTED))


@pytest.mark.parametrize("key", ["zz", "c", "", "b" * 40])
def test_an_unknown_or_paused_variant_on_the_form_is_ignored_and_the_gift_goes_on(client, variants, key):
    pay_in_the_sandbox(client, donate_through_the_form(client, key))

    with in_app(client.application):
        attempt = latest_attempt()
        donation = db.session.scalars(select(Donation).where(Donation.attempt_id == attempt.id)).one()
        assert (attempt.variant_id, donation.variant_id) == (None, None)
        assert donation.article_id == article_id(COUNTED)


def test_the_variant_travels_in_the_frequency_and_currency_links(client, variants):
    html = client.get("/donate?campaign=default&variant=b&article_url=https://publisher.example/a").get_data(
        as_text=True)

    assert "variant=b" in html.split('id="frequency-choice"')[1].split("</p>")[0]


def test_a_cancelled_checkout_brings_the_variant_back_into_the_form(client, variants):
    path = donate_through_the_form(client, "b")
    with in_app(client.application):
        attempt_id = latest_attempt().id

    html = client.get(f"/donate?attempt={attempt_id}").get_data(as_text=True)

    assert hidden_value(html, "variant") == "b"
    assert path


def test_a_monthly_gift_names_them_on_the_recurring_gift_and_its_first_payment_only_is_a_conversion(
        app_ctx, client, variants):
    variant = db.session.get(CampaignVariant, variants["b"])
    attempt = start_donation(replace(donation_request(amount=1000, article_url=ARTICLE), frequency=Frequency.MONTHLY,
                                     variant=variant))
    db.session.commit()
    gift = Gift(attempt)
    checkout_completed(client, gift)
    deliver(client, "invoice.paid", gift.invoice(), MONTHS[0] + 1)
    deliver(client, "invoice.paid", gift.invoice(billing_reason="subscription_cycle", created=MONTHS[1],
                                                 period_start=MONTHS[1], period_end=MONTHS[2]), MONTHS[1])

    recurring = recurring_of(gift)
    first, renewal = donations_of(gift)
    counted = article_id(COUNTED)
    assert (recurring.variant_id, recurring.article_id) == (variants["b"], counted)
    assert (first.variant_id, first.article_id, first.attempt_id) == (variants["b"], counted, attempt.id)
    assert (renewal.variant_id, renewal.article_id, renewal.attempt_id) == (variants["b"], counted, None)


def test_a_recurring_gift_through_the_sandbox_is_attributed_too(client, variants):
    pay_in_the_sandbox(client, donate_through_the_form(client, "b", frequency="monthly", amount="10.00"))

    with in_app(client.application):
        attempt = latest_attempt()
        recurring = db.session.scalars(select(RecurringDonation).where(
            RecurringDonation.attempt_id == attempt.id)).one()
        [first] = db.session.scalars(select(Donation).where(Donation.recurring_donation_id == recurring.id))
        assert (recurring.variant_id, recurring.article_id) == (variants["b"], article_id(COUNTED))
        assert (first.variant_id, first.article_id, first.attempt_id) == (variants["b"], article_id(COUNTED),
                                                                          attempt.id)


def test_the_same_form_with_another_variant_is_a_new_attempt(app_ctx, variants):
    request = donation_request()
    control = start_donation(replace(request, variant=db.session.get(CampaignVariant, variants["a"])), "0" * 36)
    other = start_donation(replace(request, variant=db.session.get(CampaignVariant, variants["b"])), "0" * 36)

    assert control.id != other.id
    assert (control.variant_id, other.variant_id) == (variants["a"], variants["b"])


# -- the JSON API -----------------------------------------------------------------------------------

def api_body(**fields) -> dict:
    return {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
            "email": "api@example.com", "article_url": ARTICLE, **fields}


def test_the_api_takes_a_variant_and_the_webhook_books_it(client, variants):
    response = client.post("/api/v1/checkout-sessions", json=api_body(variant="b"))

    assert response.status_code == 201, response.get_data(as_text=True)
    with in_app(client.application):
        attempt = db.session.scalars(select(CheckoutAttempt).where(
            CheckoutAttempt.checkout_session_id == response.json["id"])).one()
        assert (attempt.variant_id, attempt.article_id) == (variants["b"], article_id(COUNTED))
        session = checkout_session(attempt)
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    with in_app(client.application):
        donation = db.session.scalars(select(Donation).where(Donation.stripe_checkout_session_id == session["id"])).one()
        assert (donation.variant_id, donation.article_id) == (variants["b"], article_id(COUNTED))


@pytest.mark.parametrize("value", ["zz", 7, ["b"], "", "B"])
def test_the_api_refuses_an_unknown_variant_and_creates_nothing(client, variants, value):
    response = client.post("/api/v1/checkout-sessions", json=api_body(variant=value))

    assert response.status_code == 400
    assert response.json == {"errors": {"variant": "Unknown variant."}}
    with in_app(client.application):
        assert db.session.scalars(select(CheckoutAttempt)).first() is None


def test_the_api_books_a_paused_variants_gift_unattributed(client, variants):
    response = client.post("/api/v1/checkout-sessions", json=api_body(variant="c"))

    assert response.status_code == 201
    with in_app(client.application):
        assert latest_attempt().variant_id is None


def test_the_api_document_describes_the_variant(client):
    document = client.get("/api/v1/openapi.json").json
    schema = document["paths"]["/api/v1/checkout-sessions"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]

    assert schema["properties"]["variant"]["type"] == "string"
    assert set(schema["properties"]) == {"campaign", "amount", "currency", "frequency", "email", "name",
                                         "article_url", "cover_fees", "mailing_consent", "variant", "captcha_token",
                                         "success_url", "cancel_url"}
