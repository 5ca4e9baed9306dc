"""What the outbox does when the mail server says no: a 5xx reply fails the email at once (staff see it and
resend it, as the same message), a 4xx reply or a lost connection is retried with growing waits, and a
sender that stops mid-send has its email sent again and counted as a possible duplicate.

Against a real SMTP server on loopback (aiosmtpd) that refuses the addresses a test names.
"""
from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from donations.db import now_utc
from donations.extensions import db
from donations.mail import sender as sender_module
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import CLAIM, send_due
from donations.staff.models import AuditEntry
from tests.smtp_helpers import smtp_on_loopback
from tests.staff_helpers import audit_rows, in_app, signed_in, webhook_gift


@dataclass
class Answers:
    """What the server answers, by recipient: RCPT TO refusals and DATA refusals."""

    rcpt: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    messages: list = field(default_factory=list)

    def message_ids(self) -> list[str]:
        return [email.message_from_bytes(m.content, policy=email.policy.default)["Message-ID"].strip()
                for m in self.messages]


@pytest.fixture
def smtp(app, monkeypatch):
    """A real SMTP server on loopback that refuses what the test tells it to; SMTP_URL points at it."""
    answers = Answers()

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address in answers.rcpt:
                return answers.rcpt[address]
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            for address in envelope.rcpt_tos:
                if address in answers.data:
                    return answers.data[address]
            answers.messages.append(envelope)
            return "250 OK"

    with smtp_on_loopback(Handler()) as (port, _):
        monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{port}")
        yield answers


def outbox_row(app, address: str) -> dict:
    with in_app(app):
        row = db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_address == address)).one()
        return {"id": row.id, "status": row.status, "attempts": row.attempts, "last_error": row.last_error,
                "next_attempt_at": row.next_attempt_at, "message_id": row.message_id,
                "possible_duplicates": row.possible_duplicates}


def send(app, now=None) -> dict[str, int]:
    with in_app(app):
        return send_due(now)


UNKNOWN_USER = "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"


def test_a_refused_recipient_5xx_fails_at_once_with_the_servers_reply_and_is_never_retried(client, smtp):
    app = client.application
    webhook_gift(client, email="gone@example.com")
    webhook_gift(client, email="ada@example.com")
    smtp.rcpt["gone@example.com"] = UNKNOWN_USER

    assert send(app) == {"sent": 1, "retry": 0, "failed": 1}

    row = outbox_row(app, "gone@example.com")
    assert row["status"] is EmailStatus.FAILED and row["attempts"] == 1
    assert row["last_error"] == f"SMTPRecipientsRefused: {UNKNOWN_USER}"
    assert send(app, now_utc() + timedelta(days=3)) == {"sent": 0, "retry": 0, "failed": 0}
    assert [m.rcpt_tos for m in smtp.messages] == [["ada@example.com"]]  # the other reader got theirs


def test_content_refused_with_554_at_data_fails_at_once(client, smtp):
    app = client.application
    webhook_gift(client, email="strict@example.com")
    smtp.data["strict@example.com"] = "554 5.7.1 Message rejected: policy violation"

    assert send(app) == {"sent": 0, "retry": 0, "failed": 1}

    row = outbox_row(app, "strict@example.com")
    assert row["status"] is EmailStatus.FAILED
    assert row["last_error"] == "SMTPDataError: 554 5.7.1 Message rejected: policy violation"


def test_a_4xx_reply_is_retried_with_doubling_waits_and_the_retry_is_the_same_message(client, smtp):
    app = client.application
    webhook_gift(client, email="busy@example.com")
    smtp.rcpt["busy@example.com"] = "451 4.7.1 Greylisted, please try again later"
    start = now_utc()

    assert send(app, start) == {"sent": 0, "retry": 1, "failed": 0}
    first = outbox_row(app, "busy@example.com")
    assert first["status"] is EmailStatus.PENDING and first["attempts"] == 1
    assert first["next_attempt_at"] == start + timedelta(seconds=30)
    assert "451 4.7.1 Greylisted" in first["last_error"]
    assert send(app, start + timedelta(seconds=29)) == {"sent": 0, "retry": 0, "failed": 0}  # not due yet

    second_try = start + timedelta(seconds=30)
    assert send(app, second_try) == {"sent": 0, "retry": 1, "failed": 0}
    assert outbox_row(app, "busy@example.com")["next_attempt_at"] == second_try + timedelta(seconds=60)

    del smtp.rcpt["busy@example.com"]  # the greylisting is over
    assert send(app, second_try + timedelta(seconds=60)) == {"sent": 1, "retry": 0, "failed": 0}
    final = outbox_row(app, "busy@example.com")
    assert final["status"] is EmailStatus.SENT and final["attempts"] == 3
    assert smtp.message_ids() == [first["message_id"]]


def test_staff_see_a_failed_email_and_resend_it_as_the_same_message(client, smtp):
    app = client.application
    webhook_gift(client, email="gone@example.com")
    smtp.rcpt["gone@example.com"] = UNKNOWN_USER
    send(app)
    failed = outbox_row(app, "gone@example.com")
    staff = signed_in(client, "staff")

    page = staff.get("/staff/emails?status=failed").get_data(as_text=True)
    row = re.search(rf'<tr data-status="failed" data-id="{failed["id"]}">.*?</tr>', page, re.S).group(0)
    assert "gone@example.com" in row and "550 5.1.1" in row
    assert f'action="/staff/emails/{failed["id"]}/resend?status=failed"' in row and ">Resend</button>" in row

    smtp.rcpt.clear()  # the reader fixed their mailbox
    response = staff.post(f"/staff/emails/{failed['id']}/resend?status=failed")

    assert response.status_code == 303 and response.headers["Location"].endswith("/staff/emails?status=failed")
    [entry] = audit_rows(app, AuditEntry.action == "email.resend")
    assert entry["object_id"] == str(failed["id"]) and entry["actor_id"] == staff.id
    assert entry["detail"]["to"] == "gone@example.com"
    assert outbox_row(app, "gone@example.com")["status"] is EmailStatus.PENDING
    assert send(app) == {"sent": 1, "retry": 0, "failed": 0}  # due at once, not after a backoff
    assert smtp.message_ids() == [failed["message_id"]]
    assert outbox_row(app, "gone@example.com")["status"] is EmailStatus.SENT


def test_resending_an_email_that_did_not_fail_changes_nothing(client, smtp):
    app = client.application
    webhook_gift(client, email="ada@example.com")
    send(app)
    sent = outbox_row(app, "ada@example.com")
    staff = signed_in(client, "admin")

    response = staff.post(f"/staff/emails/{sent['id']}/resend")

    assert response.status_code == 303
    assert "Only a failed email can be sent again" in staff.get("/staff/emails").get_data(as_text=True)
    assert outbox_row(app, "ada@example.com") == sent
    assert audit_rows(app, AuditEntry.action == "email.resend") == []
    assert staff.post("/staff/emails/999999/resend").status_code == 404
    assert staff.post(f"/staff/emails/{sent['id']}/resend", csrf=False).status_code == 400


class Crash(BaseException):
    """The sender process dying (kill -9, out of memory): nothing after it runs."""


def test_a_sender_stopped_after_the_server_took_the_message_sends_it_again_and_counts_a_duplicate(
        client, smtp, monkeypatch):
    app = client.application
    webhook_gift(client, email="ada@example.com")
    real_send = sender_module.SMTPTransport.send

    def send_then_die(self, message):
        real_send(self, message)  # the server has the message…
        raise Crash()  # …and the sender dies before it writes "sent"

    monkeypatch.setattr(sender_module.SMTPTransport, "send", send_then_die)
    start = now_utc()
    with pytest.raises(Crash), in_app(app):
        send_due(start)
    monkeypatch.setattr(sender_module.SMTPTransport, "send", real_send)

    assert outbox_row(app, "ada@example.com")["status"] is EmailStatus.PENDING
    assert send(app, start + CLAIM - timedelta(seconds=1)) == {"sent": 0, "retry": 0, "failed": 0}  # still claimed
    assert send(app, start + CLAIM) == {"sent": 1, "retry": 0, "failed": 0}

    row = outbox_row(app, "ada@example.com")
    assert row["status"] is EmailStatus.SENT and row["possible_duplicates"] == 1
    assert smtp.message_ids() == [row["message_id"]] * 2  # the same Message-ID, so a server can drop the copy
    page = signed_in(client, "staff").get("/staff/emails").get_data(as_text=True)
    assert "Possible duplicates: 1" in page


def test_a_sender_stopped_before_sending_leaves_no_possible_duplicate(client, smtp, monkeypatch):
    app = client.application
    webhook_gift(client, email="ada@example.com")

    def die(self):
        raise Crash()  # claimed, then dead before a connection was even opened

    real_enter = sender_module.SMTPTransport.__enter__
    monkeypatch.setattr(sender_module.SMTPTransport, "__enter__", die)
    start = now_utc()
    with pytest.raises(Crash), in_app(app):
        send_due(start)
    monkeypatch.setattr(sender_module.SMTPTransport, "__enter__", real_enter)

    assert send(app, start + CLAIM) == {"sent": 1, "retry": 0, "failed": 0}
    row = outbox_row(app, "ada@example.com")
    assert row["possible_duplicates"] == 0 and len(smtp.messages) == 1
    assert "Possible duplicates: 0" in signed_in(client, "staff").get("/staff/emails").get_data(as_text=True)


def test_a_connection_lost_while_a_message_was_on_its_way_counts_a_possible_duplicate(client, smtp, monkeypatch):
    import smtplib

    app = client.application
    webhook_gift(client, email="ada@example.com")
    webhook_gift(client, email="bob@example.com")
    real_send = sender_module.SMTPTransport.send
    dropped = []

    def deliver_then_drop(self, message):
        if not dropped:  # the first message reaches the server, then the line goes before its 250 arrives
            dropped.append(message["To"])
            real_send(self, message)
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        real_send(self, message)

    monkeypatch.setattr(sender_module.SMTPTransport, "send", deliver_then_drop)
    start = now_utc()
    assert send(app, start) == {"sent": 0, "retry": 2, "failed": 0}  # the other email waits too, unsent
    assert send(app, start + timedelta(hours=3)) == {"sent": 2, "retry": 0, "failed": 0}

    first, other = (outbox_row(app, address) for address in (dropped[0], ({"ada@example.com", "bob@example.com"}
                                                                            - set(dropped)).pop()))
    assert (first["possible_duplicates"], other["possible_duplicates"]) == (1, 0)
    assert smtp.message_ids().count(first["message_id"]) == 2 and smtp.message_ids().count(other["message_id"]) == 1
