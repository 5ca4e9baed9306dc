"""The sandbox checkout: Stripe's test cards, and Stripe-shaped signed events through the real intake."""
from __future__ import annotations

from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, RecurringDonation, RecurringStatus, StripeEvent
from donations.mail.models import OutboxEmail
from tests.functional.helpers import hidden_value
from tests.functional.test_donate_form import form_data


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def open_checkout(client) -> str:
    response = client.post("/donate", data=form_data(client))
    assert response.status_code == 303
    return response.headers["Location"].removeprefix("http://donations.test")


def pay(client, path: str, card: str):
    html = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": hidden_value(html, "csrf_token"), "card_number": card})


def test_checkout_page_says_it_is_test_mode(app_ctx, client):
    html = client.get(open_checkout(client)).get_data(as_text=True)

    assert "Test mode — no money moves" in html
    assert "Pay €25.00" in html


def test_paying_with_4242_books_the_gift_through_the_webhook_and_thanks_the_reader(app_ctx, client):
    path = open_checkout(client)

    response = pay(client, path, "4242 4242 4242 4242")

    assert response.status_code == 303
    thanks = client.get(response.headers["Location"].removeprefix("http://donations.test"))
    assert 'data-status="succeeded"' in thanks.get_data(as_text=True)
    donation = db.session.scalars(select(Donation)).one()
    assert (donation.amount, donation.status) == (2500, DonationStatus.SUCCEEDED)
    assert donation.stripe_payment_intent_id.startswith("pi_sandbox_")
    assert count(OutboxEmail) == 1
    stored = {e.type: e for e in db.session.scalars(select(StripeEvent))}
    assert set(stored) == {"payment_intent.succeeded", "checkout.session.completed"}
    # The same shape as Stripe's: the API version the SDK pins, the session inside data.object.
    completed = stored["checkout.session.completed"].payload
    assert completed["api_version"] == "2026-10-28.endive"
    assert completed["data"]["object"]["payment_status"] == "paid"
    assert completed["data"]["object"]["metadata"]["attempt_id"] == donation.attempt_id


def test_declined_card_shows_a_clear_message_and_books_nothing(app_ctx, client):
    path = open_checkout(client)

    response = pay(client, path, "4000 0000 0000 0002")

    assert response.status_code == 402
    assert "Your card was declined. Please try another card." in response.get_data(as_text=True)
    assert (count(Donation), count(OutboxEmail)) == (0, 0)
    # …and the reader can still pay with another card.
    assert pay(client, path, "4242424242424242").status_code == 303
    assert count(Donation) == 1


def test_a_card_that_is_not_a_test_card_is_refused(app_ctx, client):
    response = pay(client, open_checkout(client), "1234 5678 9012 3456")

    assert response.status_code == 402
    assert "Use a Stripe test card" in response.get_data(as_text=True)
    assert count(Donation) == 0


def test_a_paid_session_cannot_be_paid_again(app_ctx, client):
    path = open_checkout(client)
    pay(client, path, "4242424242424242")

    html = client.get(path).get_data(as_text=True)

    assert "This checkout is complete" in html
    assert count(Donation) == 1


def test_unknown_sandbox_session_is_404(client):
    assert client.get("/sandbox/checkout/cs_test_nope").status_code == 404


def test_monthly_checkout_says_it_repeats_and_sets_up_the_gift(app_ctx, client):
    response = client.post("/donate", data=form_data(client, frequency="monthly", amount="10.00"))
    path = response.headers["Location"].removeprefix("http://donations.test")
    html = client.get(path).get_data(as_text=True)
    assert "€10.00 every month, cancel any time." in html

    paid = pay(client, path, "4242424242424242")

    thanks = client.get(paid.headers["Location"].removeprefix("http://donations.test")).get_data(as_text=True)
    assert 'data-status="succeeded"' in thanks and "(every month)" in thanks
    assert "#donations-thanks=monthly" in thanks
    recurring = db.session.scalars(select(RecurringDonation)).one()
    assert (recurring.amount, recurring.frequency.value, recurring.status) == (1000, "monthly", RecurringStatus.ACTIVE)
    donation = db.session.scalars(select(Donation)).one()
    assert donation.recurring_donation_id == recurring.id and donation.stripe_invoice_id.startswith("in_sandbox_")
    types = sorted(e.type for e in db.session.scalars(select(StripeEvent)))
    assert types == ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]
    assert count(OutboxEmail) == 1


def test_monthly_gift_with_the_fee_covered_keeps_it_on_every_payment(app_ctx, client):
    response = client.post("/donate", data=form_data(client, frequency="monthly", amount="10.00", cover_fees="y"))
    pay(client, response.headers["Location"].removeprefix("http://donations.test"), "4242424242424242")

    donation = db.session.scalars(select(Donation)).one()
    assert (donation.amount, donation.covered_fee) == (1041, 41)  # (1000 + 25) / 0.985, rounded up
