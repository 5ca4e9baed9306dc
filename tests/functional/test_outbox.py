"""Receipts: numbered without gaps, written to the outbox with the donation, sent after commit, retried."""
from __future__ import annotations

import email
import email.policy
import socket
from datetime import timedelta

from sqlalchemy import select

from donations.db import now_utc
from donations.extensions import db
from donations.ledger.models import Donation
from donations.ledger.operations import next_receipt_number
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import backoff, send_due
from tests.factories import checkout_session, event, make_attempt, post_event


def book_gift(client, **kwargs) -> Donation:
    attempt = make_attempt(**kwargs)
    db.session.commit()
    post_event(client, event("checkout.session.completed", checkout_session(attempt)))
    return db.session.scalars(select(Donation).where(Donation.attempt_id == attempt.id)).one()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_receipt_numbers_count_up_without_gaps_and_restart_each_year(app_ctx):
    numbers = [next_receipt_number(2030), next_receipt_number(2030), next_receipt_number(2031)]

    assert numbers == ["2030-000001", "2030-000002", "2031-000001"]


def test_receipts_of_successive_gifts_have_consecutive_numbers(app_ctx, client):
    first = book_gift(client, email="a@example.com")
    second = book_gift(client, email="b@example.com")

    year, number = first.receipt_number.split("-")
    assert second.receipt_number == f"{year}-{int(number) + 1:06d}"


def test_receipt_is_sent_over_smtp_once_with_text_html_and_a_stable_message_id(app_ctx, client, smtp_server,
                                                                             monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(client.application.config, "SMTP_URL", f"smtp://{host}:{port}")
    donation = book_gift(client, name="Ada Reader", email="ada@example.com")

    assert send_due() == {"sent": 1, "retry": 0, "failed": 0}
    assert send_due() == {"sent": 0, "retry": 0, "failed": 0}

    assert len(received) == 1
    assert received[0].rcpt_tos == ["ada@example.com"]
    message = email.message_from_bytes(received[0].content, policy=email.policy.default)
    outbox = db.session.scalars(select(OutboxEmail)).one()
    assert message["Message-ID"].strip() == outbox.message_id
    assert message["Subject"] == f"Your receipt {donation.receipt_number} from The Riverside Chronicle"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "€25.00" in body and donation.receipt_number in body
        assert donation.paid_at.strftime("%-d %B %Y") in body
    assert outbox.status is EmailStatus.SENT and outbox.sent_at is not None


def test_smtp_outage_is_retried_with_backoff_and_nothing_is_lost(app_ctx, client, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(client.application.config, "SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nobody there
    book_gift(client)

    assert send_due() == {"sent": 0, "retry": 1, "failed": 0}
    outbox = db.session.scalars(select(OutboxEmail)).one()
    assert outbox.status is EmailStatus.PENDING and outbox.attempts == 1
    assert "ConnectionRefusedError" in outbox.last_error
    assert outbox.next_attempt_at > now_utc() + timedelta(seconds=25)
    assert send_due() == {"sent": 0, "retry": 0, "failed": 0}  # not due yet

    monkeypatch.setitem(client.application.config, "SMTP_URL", f"smtp://{host}:{port}")
    assert send_due(now=now_utc() + timedelta(minutes=1)) == {"sent": 1, "retry": 0, "failed": 0}
    assert len(received) == 1


def test_backoff_doubles_and_is_capped():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(50) == timedelta(hours=2)


def test_without_smtp_the_email_stays_in_the_outbox_and_goes_to_the_log(app_ctx, client, caplog):
    caplog.set_level("INFO")
    donation = book_gift(client)

    assert send_due() == {"sent": 1, "retry": 0, "failed": 0}

    assert donation.receipt_number in caplog.text
    assert db.session.scalars(select(OutboxEmail)).one().status is EmailStatus.SENT


def test_outbox_send_command_sends_due_emails(app_ctx, client, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(client.application.config, "SMTP_URL", f"smtp://{host}:{port}")
    book_gift(client)

    result = client.application.test_cli_runner().invoke(args=["outbox", "send"])

    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    assert len(received) == 1


def test_receipt_formats_amount_and_date_for_the_readers_locale(app_ctx, client):
    from dataclasses import replace

    from donations.checkout.operations import start_donation
    from tests.factories import donation_request

    attempt = start_donation(replace(donation_request(), locale="fr"))
    db.session.commit()
    post_event(client, event("checkout.session.completed", checkout_session(attempt)))

    body = db.session.scalars(select(OutboxEmail)).one().body_text
    assert "25,00\xa0€" in body
    month = {1: "janvier", 2: "février", 3: "mars", 4: "avril", 5: "mai", 6: "juin", 7: "juillet", 8: "août",
             9: "septembre", 10: "octobre", 11: "novembre", 12: "décembre"}[db.session.scalars(select(Donation.paid_at)).one().month]  # the month it was paid in, as stored
    assert month in body
