"""A refund is confirmed to the supporter: one email per refund booked, however often or in whatever order Stripe
sends charge.refunded; in the supporter's language; sent over SMTP like every email; none to an erased address."""
from __future__ import annotations

import email
import email.policy

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.ledger.models import Donation
from donations.mail.models import OutboxEmail
from donations.mail.sender import send_due
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.functional.statement_helpers import refund as charge_refunded


def gift(client, amount: int = 2500, **kwargs) -> Donation:
    attempt = make_attempt(amount=amount, **kwargs)
    db.session.commit()
    assert post_event(client, event("checkout.session.completed", checkout_session(attempt))).status_code == 200
    return db.session.scalars(select(Donation).where(Donation.attempt_id == attempt.id)).one()


def refund_emails() -> list[OutboxEmail]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "refund")
                                   .order_by(OutboxEmail.id)))


def test_a_partial_refund_tells_what_went_back_and_what_stays_given(app_ctx, client):
    donation = gift(client, name="Ada Reader", email="ada@example.com")

    charge_refunded(client, donation.id, 1250)

    [sent] = refund_emails()
    assert sent.to_address == "ada@example.com"
    assert sent.subject == "Your refund from The Riverside Chronicle"
    text = sent.body_text
    assert "Dear Ada Reader," in text
    assert "we have refunded €12.50 of your gift of €25.00 to The Riverside Chronicle." in text
    assert "Your gift now: €12.50" in text
    assert f"Receipt number: {donation.receipt_number}" in text
    assert f"Date of the gift: {donation.paid_at.strftime('%-d %B %Y')}" in text
    assert "/account/" in text  # the manage link, where the receipts stay
    assert "€12.50" in sent.body_html and donation.receipt_number in sent.body_html


def test_the_rest_refunded_later_is_a_second_email_that_says_in_full(app_ctx, client):
    donation = gift(client)
    charge_refunded(client, donation.id, 1000)

    charge_refunded(client, donation.id, 2500)  # Stripe's running total: 15.00 more

    first, second = refund_emails()
    assert "we have refunded €10.00 of your gift of €25.00" in first.body_text
    assert "we have refunded your gift of €25.00 to The Riverside Chronicle in full." in second.body_text
    assert "Refunded: €15.00" in second.body_text and "Your gift now" not in second.body_text


def test_the_same_refund_delivered_again_or_late_sends_nothing_more(app_ctx, client):
    donation = gift(client)
    charge_refunded(client, donation.id, 1500)

    charge_refunded(client, donation.id, 1500)  # the same total again (a re-sent event)
    charge_refunded(client, donation.id, 1000)  # an older total arriving late

    [sent] = refund_emails()
    assert "Refunded: €15.00" in sent.body_text


def test_a_german_supporter_gets_it_in_german(app_ctx, client):
    donation = gift(client)
    donation.supporter.locale = "de"  # their saved language
    db.session.commit()

    charge_refunded(client, donation.id, 1250)

    [sent] = refund_emails()
    assert sent.subject == "Ihre Erstattung von The Riverside Chronicle"
    assert "wir haben Ihnen 12,50\u00a0€ Ihrer Spende von 25,00\u00a0€ an The Riverside Chronicle erstattet." in sent.body_text
    assert 'lang="de"' in sent.body_html


def test_a_french_supporter_gets_a_no_break_space_before_each_colon(app_ctx, client):
    donation = gift(client)
    donation.supporter.locale = "fr"
    db.session.commit()

    charge_refunded(client, donation.id, 1250)

    [sent] = refund_emails()
    text = sent.body_text
    assert "Remboursé\u00a0: 12,50\u00a0€" in text, text
    assert f"\u00a0: {donation.receipt_number}" in text
    assert not any(line.split(": ")[0] and ": " in line and not line.split(": ")[0].endswith("\u00a0")
                   for line in text.splitlines()), text


def test_yen_has_no_decimals(app_ctx, client, monkeypatch):
    monkeypatch.setitem(client.application.config, "CURRENCIES", ["EUR", "JPY"])
    donation = gift(client, amount=5000, currency="JPY")

    charge_refunded(client, donation.id, 2000)

    [sent] = refund_emails()
    assert "we have refunded ¥2,000 of your gift of ¥5,000" in sent.body_text


def test_it_goes_out_over_smtp_once(app_ctx, client, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(client.application.config, "SMTP_URL", f"smtp://{host}:{port}")
    donation = gift(client, email="ada@example.com")
    charge_refunded(client, donation.id, 500)

    assert send_due() == {"sent": 2, "retry": 0, "failed": 0}  # the receipt and the refund
    assert send_due() == {"sent": 0, "retry": 0, "failed": 0}

    subjects = sorted(email.message_from_bytes(m.content, policy=email.policy.default)["Subject"] for m in received)
    assert subjects == [f"Your receipt {donation.receipt_number} from The Riverside Chronicle",
                        "Your refund from The Riverside Chronicle"]


@pytest.mark.parametrize("address", ["erased-7@invalid", "someone@mail.invalid"])
def test_no_refund_email_to_an_erased_address(app_ctx, client, address):
    donation = gift(client, email="ada@example.com")
    donation.supporter.email = address  # as erasure leaves it
    db.session.commit()

    charge_refunded(client, donation.id, 500)

    assert refund_emails() == []
    assert db.session.get(Donation, donation.id).amount_refunded == 500  # the refund is booked all the same
