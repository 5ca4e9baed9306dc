"""Several senders at once (the scheduler and `flask outbox send`, or a second scheduler) send each email once."""
from __future__ import annotations

from sqlalchemy import func, select

from donations.extensions import db
from donations.mail import outbox
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import send_due
from tests.conftest import run_threads


def queue_emails(app, count: int) -> None:
    """``count`` emails to distinct readers, committed, as the ledger would leave them in the outbox."""
    with app.test_request_context():
        for n in range(count):
            outbox.queue("manage_link", f"reader{n}@example.com",
                         {"publication": "P", "public_url": "http://x", "name": None, "manage_url": "http://x/a"},
                         dedupe_key=f"test:{n}")
        db.session.commit()


def test_four_senders_at_once_send_each_email_once(postgres, committing_app, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(committing_app.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue_emails(committing_app, 12)

    def sender(_):
        with committing_app.app_context():
            return send_due()["sent"]

    results = run_threads(4, sender)

    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 12
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(f"reader{n}@example.com" for n in range(12))
    with committing_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)
                                 .where(OutboxEmail.status == EmailStatus.SENT)) == 12


def test_a_second_sender_starting_mid_batch_finds_nothing_left_to_send(postgres, committing_app, smtp_server,
                                                                     monkeypatch):
    import threading

    from donations.mail import sender as sender_module

    host, port, received = smtp_server
    monkeypatch.setitem(committing_app.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue_emails(committing_app, 5)
    first_thread, calls, second = threading.get_ident(), [], {}
    real_send = sender_module.SMTPTransport.send

    def send(self, message):
        if threading.get_ident() == first_thread:
            calls.append(message["To"])
            if len(calls) == 2:  # the first sender has committed one email and is sending the next

                def run_second():
                    with committing_app.app_context():
                        second["counts"] = send_due()

                thread = threading.Thread(target=run_second)
                thread.start()
                thread.join(30)
        return real_send(self, message)

    monkeypatch.setattr(sender_module.SMTPTransport, "send", send)

    with committing_app.app_context():
        first = send_due()

    assert second["counts"]["sent"] == 0
    assert first["sent"] == 5
    assert len(received) == 5
