"""POST /stripe/webhook: verified, stored once, booked once, whatever the order or repetition."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, StripeEvent
from donations.mail.models import OutboxEmail
from tests.factories import checkout_session, event, make_attempt, post_event, signed


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def only_donation() -> Donation:
    return db.session.scalars(select(Donation)).one()


def test_paid_checkout_session_books_one_donation_with_receipt(app_ctx, client):
    attempt = make_attempt(amount=2500, email="Ada@Example.com")
    db.session.commit()

    response = post_event(client, event("checkout.session.completed", checkout_session(attempt)))

    assert response.status_code == 200
    donation = only_donation()
    assert (donation.amount, donation.currency, donation.status) == (2500, "EUR", DonationStatus.SUCCEEDED)
    assert donation.supporter.email == "ada@example.com"
    assert donation.article_url == "https://publisher.example/news/1"
    assert donation.campaign.slug == "default"
    assert donation.receipt_number.startswith(f"{donation.paid_at.year}-")
    email = db.session.scalars(select(OutboxEmail)).one()
    assert email.to_address == "ada@example.com"
    assert email.dedupe_key == f"receipt:{donation.id}"
    assert "€25.00" in email.body_text and donation.receipt_number in email.body_html


def test_repeated_delivery_of_one_event_books_one_donation_and_one_receipt(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    evt = event("checkout.session.completed", checkout_session(attempt))

    outcomes = [post_event(client, evt).get_json()["outcome"] for _ in range(3)]

    assert outcomes[1:] == ["duplicate", "duplicate"]
    assert (count(Donation), count(OutboxEmail), count(StripeEvent)) == (1, 1, 1)


def test_two_events_for_one_session_book_one_donation(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    session = checkout_session(attempt)

    post_event(client, event("checkout.session.completed", session))
    post_event(client, event("checkout.session.completed", session))  # same object, new event id

    assert (count(Donation), count(OutboxEmail), count(StripeEvent)) == (1, 1, 2)


def test_unpaid_session_is_pending_until_async_payment_succeeds(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()

    post_event(client, event("checkout.session.completed", checkout_session(attempt, payment_status="unpaid")))
    assert only_donation().status is DonationStatus.PENDING
    assert only_donation().receipt_number is None
    assert count(OutboxEmail) == 0

    post_event(client, event("checkout.session.async_payment_succeeded", checkout_session(attempt)))
    assert only_donation().status is DonationStatus.SUCCEEDED
    assert count(OutboxEmail) == 1


def test_async_payment_success_before_completed_event_ends_succeeded(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    session = checkout_session(attempt)

    post_event(client, event("checkout.session.async_payment_succeeded", session))
    post_event(client, event("checkout.session.completed", {**session, "payment_status": "unpaid"}))

    assert only_donation().status is DonationStatus.SUCCEEDED
    assert count(OutboxEmail) == 1


def test_async_payment_failure_marks_donation_failed_without_receipt(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    session = checkout_session(attempt, payment_status="unpaid")

    post_event(client, event("checkout.session.completed", session))
    post_event(client, event("checkout.session.async_payment_failed", session))

    assert only_donation().status is DonationStatus.FAILED
    assert count(OutboxEmail) == 0


def test_failure_after_success_is_refused_and_logged(app_ctx, client, caplog):
    attempt = make_attempt()
    db.session.commit()
    session = checkout_session(attempt)
    post_event(client, event("checkout.session.completed", session))

    response = post_event(client, event("checkout.session.async_payment_failed", session))

    assert response.status_code == 200
    assert "succeeded -> failed" in response.get_json()["outcome"]
    assert only_donation().status is DonationStatus.SUCCEEDED
    assert "succeeded -> failed" in caplog.text


def test_expired_session_closes_the_attempt_and_books_nothing(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()

    response = post_event(client, event("checkout.session.expired",
                                        checkout_session(attempt, status="expired", payment_status="unpaid")))

    assert response.get_json()["outcome"] == f"attempt {attempt.id} expired"
    db.session.refresh(attempt)
    assert attempt.status.value == "expired"
    assert count(Donation) == 0


@pytest.mark.parametrize("metadata", [{}, {"attempt_id": "00000000-0000-0000-0000-000000000000"}])
def test_sessions_this_app_did_not_create_are_acknowledged_and_ignored(app_ctx, client, metadata, caplog):
    caplog.set_level("INFO")
    response = post_event(client, event("checkout.session.completed", checkout_session(metadata=metadata)))

    assert response.status_code == 200
    assert response.get_json()["outcome"].startswith("ignored: not ours")
    assert count(Donation) == 0
    assert "not ours" in caplog.text


def test_unknown_event_types_are_acknowledged_and_ignored(app_ctx, client):
    response = post_event(client, event("customer.created", {"id": "cus_1", "object": "customer"}))

    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored: event type not handled"
    assert count(StripeEvent) == 1


def test_wrong_amount_from_stripe_is_booked_as_charged(app_ctx, client, caplog):
    attempt = make_attempt(amount=2500)
    db.session.commit()

    post_event(client, event("checkout.session.completed", checkout_session(attempt, amount=2600)))

    assert only_donation().amount == 2600
    assert "charged 2600 EUR" in caplog.text


def _post_raw(client, body: bytes, header: str | None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return client.post("/stripe/webhook", data=body, headers=headers)


@pytest.mark.parametrize("case", ["no header", "wrong secret", "tampered body", "old timestamp",
                                  "future timestamp", "garbage header", "not json", "not an event"])
def test_unverifiable_webhooks_get_400_and_write_nothing(app_ctx, client, case):
    attempt = make_attempt()
    db.session.commit()
    secret = client.application.config["STRIPE_WEBHOOK_SECRET"]
    evt = event("checkout.session.completed", checkout_session(attempt))
    body, headers = signed(evt, secret)
    header = headers["Stripe-Signature"]
    match case:
        case "no header":
            header = None
        case "wrong secret":
            body, headers = signed(evt, "whsec_someone_else")
            header = headers["Stripe-Signature"]
        case "tampered body":
            body = body.replace(b'"amount_total": 2500', b'"amount_total": 1')
        case "old timestamp":
            body, headers = signed(evt, secret, timestamp=int(time.time()) - 301)
            header = headers["Stripe-Signature"]
        case "future timestamp":
            body, headers = signed(evt, secret, timestamp=int(time.time()) + 400)
            header = headers["Stripe-Signature"]
        case "garbage header":
            header = "t=abc,v1=zzz"
        case "not json":
            body, headers = signed("this is not json", secret)
            header = headers["Stripe-Signature"]
        case "not an event":
            body, headers = signed('{"hello": "world"}', secret)
            header = headers["Stripe-Signature"]

    response = _post_raw(client, body, header)

    assert response.status_code == 400
    assert "Invalid webhook" in response.get_json()["error"]
    assert (count(StripeEvent), count(Donation), count(OutboxEmail)) == (0, 0, 0)


def test_timestamp_within_tolerance_is_accepted(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    evt = event("checkout.session.completed", checkout_session(attempt))

    assert post_event(client, evt, timestamp=int(time.time()) - 290).status_code == 200
