"""Each outcome the sender books goes through a connection of its own, in autocommit mode, one UPDATE per email:
with real commits (not the tests' rolled-back transaction), a sender killed mid-batch has booked every email the
server accepted before it, so at most the one in flight arrives twice, and the connection goes back to the pool as
it came (synchronous commits, a transaction per use)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from donations.db import now_utc
from donations.extensions import db
from donations.mail import sender as sender_module
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import CLAIM, send_due
from tests.functional.test_outbox_concurrency import queue_emails
from tests.functional.test_outbox_failures import Crash, send, smtp  # noqa: F401  (the fixture)
from tests.staff_helpers import in_app


def rows(app) -> dict[str, tuple[EmailStatus, int, int]]:
    with in_app(app):
        return {row.to_address: (row.status, row.attempts, row.possible_duplicates)
                for row in db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id))}


def kill_the_sender(app, monkeypatch, *, on: int, after_sending: bool):
    """send_due, killed (a BaseException, as nothing after kill -9 runs) when it hands the server message ``on``."""
    real_send = sender_module.SMTPTransport.send
    handed = []

    def send_and_die(self, message):
        handed.append(message["To"])
        if len(handed) == on:
            if after_sending:
                real_send(self, message)  # the server has it; the sender dies before booking it
            raise Crash()
        real_send(self, message)

    monkeypatch.setattr(sender_module.SMTPTransport, "send", send_and_die)
    start = now_utc()
    with pytest.raises(Crash), in_app(app):
        send_due(start)
    monkeypatch.setattr(sender_module.SMTPTransport, "send", real_send)
    return start


def test_a_sender_killed_before_the_third_message_has_booked_the_first_two_for_good(committing_app, smtp,
                                                                                     monkeypatch):
    queue_emails(committing_app, 5)

    start = kill_the_sender(committing_app, monkeypatch, on=3, after_sending=False)

    # Seen from another session: the two accepted emails are booked sent, committed before the third went out.
    assert [value[0] for value in rows(committing_app).values()] == [EmailStatus.SENT] * 2 + [EmailStatus.PENDING] * 3
    assert send(committing_app, start + CLAIM) == {"sent": 3, "retry": 0, "failed": 0}
    assert len(smtp.messages) == 5 and len(set(smtp.message_ids())) == 5  # nothing arrived twice
    assert rows(committing_app) == {
        "reader0@example.com": (EmailStatus.SENT, 1, 0), "reader1@example.com": (EmailStatus.SENT, 1, 0),
        # Marked with their group, never sent: counted, as nothing tells them from one in flight.
        "reader2@example.com": (EmailStatus.SENT, 1, 1), "reader3@example.com": (EmailStatus.SENT, 1, 1),
        "reader4@example.com": (EmailStatus.SENT, 1, 1),
    }


def test_a_sender_killed_after_the_server_took_a_message_sends_only_that_one_twice(committing_app, smtp,
                                                                                  monkeypatch):
    queue_emails(committing_app, 5)

    start = kill_the_sender(committing_app, monkeypatch, on=3, after_sending=True)
    assert send(committing_app, start + CLAIM) == {"sent": 3, "retry": 0, "failed": 0}

    ids = smtp.message_ids()
    assert len(ids) == 6 and len(set(ids)) == 5
    [twice] = [message_id for message_id in set(ids) if ids.count(message_id) == 2]
    with in_app(committing_app):
        assert db.session.scalar(select(OutboxEmail.to_address).where(OutboxEmail.message_id == twice)) \
            == "reader2@example.com"
    assert rows(committing_app)["reader2@example.com"] == (EmailStatus.SENT, 1, 1)
    assert sum(value[2] for value in rows(committing_app).values()) == 3  # a bound on the copies, never short


def test_a_batch_sends_every_email_once_and_books_each_with_its_time(committing_app, smtp):
    queue_emails(committing_app, 7)
    before = now_utc()

    assert send(committing_app) == {"sent": 7, "retry": 0, "failed": 0}

    assert len(smtp.messages) == 7 and len(set(smtp.message_ids())) == 7
    with in_app(committing_app):
        booked = db.session.execute(select(OutboxEmail.status, OutboxEmail.attempts, OutboxEmail.send_started_at,
                                           OutboxEmail.sent_at)).all()
    assert {(status, attempts, started) for status, attempts, started, _ in booked} == {(EmailStatus.SENT, 1, None)}
    assert all(before - timedelta(seconds=1) <= sent_at.replace(tzinfo=before.tzinfo) for *_, sent_at in booked)


@pytest.mark.parametrize("killed", [False, True])
def test_the_outcome_connection_goes_back_to_the_pool_with_synchronous_commits_and_transactions(
        postgres, committing_app, smtp, monkeypatch, killed):
    queue_emails(committing_app, 3)
    if killed:
        kill_the_sender(committing_app, monkeypatch, on=2, after_sending=True)
    else:
        assert send(committing_app) == {"sent": 3, "retry": 0, "failed": 0}

    with committing_app.app_context():
        pool = db.engine.pool
        pooled = [db.engine.connect() for _ in range(max(pool.checkedin(), 2))]  # every idle one, at once
        try:
            for connection in pooled:
                assert connection.scalar(text("SHOW synchronous_commit")) == "on"
                assert connection.connection.driver_connection.autocommit is False
        finally:
            for connection in pooled:
                connection.close()
