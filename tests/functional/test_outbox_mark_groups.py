"""The sender marks emails as being sent in groups (one commit for MARK_GROUP of them) and commits each outcome as
soon as the server answers: a sender that dies mid-group never sends an accepted email again, and the emails it
marked but never sent are counted as possible duplicates (the count is a bound, never short)."""
from __future__ import annotations

from sqlalchemy import select

from donations.db import now_utc
from donations.extensions import db
from donations.mail import sender as sender_module
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import CLAIM
from tests.functional.test_outbox_concurrency import queue_emails
from tests.functional.test_outbox_failures import Crash, send, smtp  # noqa: F401  (the fixture)
from tests.staff_helpers import in_app


def rows(app) -> dict[str, tuple[EmailStatus, int]]:
    with in_app(app):
        return {row.to_address: (row.status, row.possible_duplicates)
                for row in db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id))}


def test_a_sender_dying_mid_group_sends_no_accepted_email_twice_and_counts_the_marked_rest(client, smtp, monkeypatch):
    app = client.application
    queue_emails(app, 5)
    real_send = sender_module.SMTPTransport.send
    handed = []

    def die_on_the_third(self, message):
        handed.append(message["To"])
        if len(handed) == 3:
            raise Crash()  # killed before the third reaches the server; the first two were accepted
        real_send(self, message)

    monkeypatch.setattr(sender_module.SMTPTransport, "send", die_on_the_third)
    start = now_utc()
    try:
        send(app, start)
    except Crash:
        pass
    monkeypatch.setattr(sender_module.SMTPTransport, "send", real_send)

    assert send(app, start + CLAIM) == {"sent": 3, "retry": 0, "failed": 0}
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [f"reader{n}@example.com" for n in range(5)]
    assert len(set(smtp.message_ids())) == 5  # nothing arrived twice
    assert rows(app) == {
        "reader0@example.com": (EmailStatus.SENT, 0), "reader1@example.com": (EmailStatus.SENT, 0),
        # Marked with their group, never sent: counted all the same, as nothing tells them from one in flight.
        "reader2@example.com": (EmailStatus.SENT, 1), "reader3@example.com": (EmailStatus.SENT, 1),
        "reader4@example.com": (EmailStatus.SENT, 1),
    }


def test_a_group_that_waits_too_long_is_marked_again_and_its_claim_checked_before_each_send(client, smtp,
                                                                                         monkeypatch):
    app = client.application
    queue_emails(app, 4)
    monkeypatch.setattr(sender_module, "MARK_SECONDS", 0.0)  # every send after a group's first waited too long
    marks = []
    real_mark = sender_module._mark_sending

    def mark(email_ids, token):
        marks.append(list(email_ids))
        return real_mark(email_ids, token)

    monkeypatch.setattr(sender_module, "_mark_sending", mark)

    assert send(app) == {"sent": 4, "retry": 0, "failed": 0}
    assert len(marks) == 4 and [ids[0] for ids in marks] == sorted(ids[0] for ids in marks)
    assert len(smtp.messages) == 4 and len(set(smtp.message_ids())) == 4
    assert set(rows(app).values()) == {(EmailStatus.SENT, 0)}
