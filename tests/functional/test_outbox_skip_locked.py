"""On PostgreSQL senders claim emails with SELECT … FOR UPDATE SKIP LOCKED: concurrent senders never wait for
each other and never take the same email."""
from __future__ import annotations

import email
import email.policy
import threading
import time

from sqlalchemy import func, select, text

from donations.extensions import db
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import send_due
from tests.conftest import run_threads
from tests.functional.test_outbox_concurrency import queue_emails


def message_ids(received) -> list[str]:
    return [email.message_from_bytes(m.content, policy=email.policy.default)["Message-ID"].strip()
            for m in received]


def test_two_senders_over_fifty_due_emails_send_each_exactly_once(postgres, committing_app, smtp_server,
                                                                   monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(committing_app.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue_emails(committing_app, 50)

    def sender(_):
        with committing_app.app_context():  # each thread has its own session and connection
            counts = {"sent": 0, "retry": 0, "failed": 0}
            for _ in range(3):  # the scheduler's ticks: each run takes what is left
                for key, value in send_due(limit=20).items():
                    counts[key] += value
            return counts

    results = run_threads(2, sender)

    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["sent"] for r in results) == 50 and all(r["retry"] == r["failed"] == 0 for r in results)
    assert all(r["sent"] > 0 for r in results)  # both did part of the work
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(f"reader{n}@example.com" for n in range(50))
    with committing_app.app_context():
        stored = set(db.session.scalars(select(OutboxEmail.message_id)))
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)
                                 .where(OutboxEmail.status == EmailStatus.SENT)) == 50
    assert len(set(message_ids(received))) == 50 and set(message_ids(received)) == stored


def test_a_sender_skips_emails_locked_by_another_without_waiting(postgres, committing_app, smtp_server,
                                                                 monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(committing_app.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue_emails(committing_app, 15)
    with committing_app.app_context():
        other = db.engine.connect()  # another sender, in the middle of its claim
    held = other.begin()
    locked = list(other.execute(text("SELECT id FROM outbox_emails ORDER BY id LIMIT 5 FOR UPDATE")).scalars())
    result: dict = {}

    def run():
        with committing_app.app_context():
            result["counts"] = send_due()

    try:
        thread = threading.Thread(target=run)
        started = time.monotonic()
        thread.start()
        thread.join(15)
        finished = not thread.is_alive()
        elapsed = time.monotonic() - started
    finally:
        held.rollback()
        other.close()
    thread.join(15)

    assert finished, "the sender waited for rows another sender holds"
    assert elapsed < 10
    assert result["counts"] == {"sent": 10, "retry": 0, "failed": 0}
    assert not {m.rcpt_tos[0] for m in received} & {f"reader{n}@example.com" for n in range(5)}
    with committing_app.app_context():
        left = set(db.session.scalars(select(OutboxEmail.id).where(OutboxEmail.status == EmailStatus.PENDING)))
        assert left == set(locked)
        assert send_due() == {"sent": 5, "retry": 0, "failed": 0}  # once released, they go out
    assert len(received) == 15
