"""Outbox attachments: described on the row, rendered when the email is sent through a registered renderer,
and a renderer's failure retried with backoff like an SMTP failure."""
from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from sqlalchemy import select

from donations.db import now_utc
from donations.extensions import db
from donations.mail import attachments, outbox
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import send_due

CONTEXT = {"publication": "P", "public_url": "http://x", "name": None, "manage_url": "http://x/a"}


@pytest.fixture
def renderers(monkeypatch):
    """Test kinds in the registry for this test only."""
    calls: list[dict] = []

    def csv_report(month: str, rows: int):
        calls.append({"month": month, "rows": rows})
        return f"report-{month}.csv", "text/csv", b"day,amount\n" + b"2026-11-01,25.00\n" * rows

    def broken(**args):
        raise RuntimeError("the ledger said no")

    monkeypatch.setitem(attachments._RENDERERS, "test_csv", csv_report)
    monkeypatch.setitem(attachments._RENDERERS, "test_broken", broken)
    return calls


def queue(key: str, *specs: dict, to: str = "reader@example.com") -> None:
    outbox.queue("manage_link", to, CONTEXT, dedupe_key=key, attachments=list(specs))


def test_attachment_is_rendered_at_send_time_and_sent_over_smtp(app_ctx, renderers, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(app_ctx.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue("test:1", attachments.describe("test_csv", month="2026-11", rows=2))
    db.session.commit()

    assert db.session.scalars(select(OutboxEmail.attachments)).one() == [
        {"kind": "test_csv", "month": "2026-11", "rows": 2}]
    assert renderers == []  # nothing is built while queueing

    assert send_due() == {"sent": 1, "retry": 0, "failed": 0}

    assert renderers == [{"month": "2026-11", "rows": 2}]
    message = email.message_from_bytes(received[0].content, policy=email.policy.default)
    assert message.get_body(("plain",)) is not None  # the text and HTML bodies stay as they were
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_filename() == "report-2026-11.csv"
    assert attachment.get_content() == "day,amount\n2026-11-01,25.00\n2026-11-01,25.00\n"


def test_an_email_without_attachments_is_sent_as_before(app_ctx, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(app_ctx.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue("test:plain")

    assert send_due()["sent"] == 1

    message = email.message_from_bytes(received[0].content, policy=email.policy.default)
    assert list(message.iter_attachments()) == []
    assert db.session.scalars(select(OutboxEmail.attachments)).one() == []


@pytest.mark.parametrize("spec,error", [
    ({"kind": "test_broken"}, "AttachmentError: attachment test_broken: RuntimeError: the ledger said no"),
    ({"kind": "nobody_registered_this"}, "no renderer registered for attachment kind 'nobody_registered_this'"),
    ({"kind": "test_csv", "month": "2026-11"}, "TypeError"),  # arguments the renderer does not take
])
def test_a_failing_attachment_is_retried_with_backoff_and_the_rest_of_the_batch_goes_out(
        app_ctx, renderers, smtp_server, monkeypatch, spec, error):
    host, port, received = smtp_server
    monkeypatch.setitem(app_ctx.config, "SMTP_URL", f"smtp://{host}:{port}")
    queue("test:bad", spec, to="first@example.com")
    queue("test:good", attachments.describe("test_csv", month="2026-10", rows=1), to="second@example.com")

    assert send_due() == {"sent": 1, "retry": 1, "failed": 0}

    assert [m.rcpt_tos for m in received] == [["second@example.com"]]
    bad = db.session.scalars(select(OutboxEmail).where(OutboxEmail.dedupe_key == "test:bad")).one()
    assert bad.status is EmailStatus.PENDING and bad.attempts == 1
    assert error in bad.last_error
    assert bad.next_attempt_at > now_utc() + timedelta(seconds=25)

    monkeypatch.setitem(attachments._RENDERERS, spec["kind"], lambda **args: ("fixed.txt", "text/plain", b"ok"))
    assert send_due(now=now_utc() + timedelta(minutes=1)) == {"sent": 1, "retry": 0, "failed": 0}
    assert received[-1].rcpt_tos == ["first@example.com"]


@pytest.mark.parametrize("spec", ["report.csv", {"month": "2026-11"}, {"kind": 7}])
def test_queueing_an_attachment_without_a_kind_is_refused(app_ctx, spec):
    with pytest.raises(ValueError, match="described by a dict with a 'kind'"):
        queue("test:x", spec)
    assert db.session.scalars(select(OutboxEmail)).all() == []
