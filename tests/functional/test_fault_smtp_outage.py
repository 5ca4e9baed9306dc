"""Fault injection, scenario 3: the mail server is down while 100 gifts arrive through the webhook, then comes
back: every receipt is delivered, none is lost and none twice. PostgreSQL, a real SMTP server on loopback."""
from __future__ import annotations

import email
import email.policy
import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from donations.db import now_utc
from donations.extensions import db
from donations.ledger.models import Donation
from donations.mail.models import OutboxEmail
from donations.mail.sender import send_due
from tests.conftest import run_threads
from tests.staff_helpers import webhook_gift

GIFTS = 100


class Receiver:
    """An aiosmtpd server on a fixed loopback port that can be stopped and started again."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list = []
        self.controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        messages = self.messages

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                messages.append(envelope)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def outbox_counts(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status))
        return {status.value: n for status, n in rows}


@pytest.mark.slow
def test_receipts_of_gifts_that_arrived_while_smtp_was_down_are_all_delivered_once(postgres, committing_app,
                                                                                   monkeypatch):
    app = committing_app
    receiver = Receiver(free_port())
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{receiver.port}")  # nobody listens yet
    client = app.test_client()
    clock = now_utc()

    try:
        for n in range(GIFTS):
            webhook_gift(client, amount=1000 + n, email=f"reader{n}@example.com")
            if n % 20 == 19:  # the scheduler's ticks during the outage: every try is refused
                clock += timedelta(hours=3)  # past any backoff, so every receipt is tried again
                with app.app_context():
                    counts = send_due(clock)
                assert counts["sent"] == 0 and counts["failed"] == 0 and counts["retry"] > 0

        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Donation)) == GIFTS
            errors = set(db.session.scalars(select(OutboxEmail.last_error)))
        assert outbox_counts(app) == {"pending": GIFTS}  # nothing sent, nothing given up
        assert all(e and "ConnectionRefusedError" in e for e in errors)

        receiver.start()  # the mail server is back, on the same port
        clock += timedelta(hours=3)

        def sender(_):
            with app.app_context():
                sent = 0
                for _ in range(5):
                    sent += send_due(clock, limit=30)["sent"]
                return sent

        results = run_threads(2, sender)
    finally:
        receiver.stop()

    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == GIFTS
    assert outbox_counts(app) == {"sent": GIFTS}
    ids = [email.message_from_bytes(m.content, policy=email.policy.default)["Message-ID"].strip()
           for m in receiver.messages]
    assert len(ids) == GIFTS and len(set(ids)) == GIFTS  # no Message-ID twice
    with app.app_context():
        assert set(ids) == set(db.session.scalars(select(OutboxEmail.message_id)))
        assert db.session.scalar(select(func.sum(OutboxEmail.possible_duplicates))) == 0
    assert sorted(m.rcpt_tos[0] for m in receiver.messages) == sorted(f"reader{n}@example.com" for n in range(GIFTS))
