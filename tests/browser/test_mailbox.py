"""The browser tests' mailbox: the live app's outbox reaches a real SMTP server on loopback."""
from __future__ import annotations

from tests.browser.conftest import skip_without_chromium

skip_without_chromium()


def test_an_email_queued_by_the_live_app_arrives_once(live_app, mailbox):
    from donations.extensions import db
    from donations.mail import outbox
    from donations.mail.models import OutboxEmail

    app, _ = live_app
    with app.app_context():
        outbox.queue("manage_link", "ada@example.com", {"manage_url": "http://example.test/account/x", "name": "Ada", "publication": "The River Times"},
                     dedupe_key="browser-mailbox-test")
        db.session.commit()
    try:
        (message,) = mailbox.deliver(app)
        assert message["To"] == "ada@example.com"
        assert "http://example.test/account/x" in message.get_body(("plain",)).get_content()
        assert mailbox.deliver(app) == []
    finally:
        with app.app_context():
            db.session.query(OutboxEmail).filter_by(dedupe_key="browser-mailbox-test").delete()
            db.session.commit()
