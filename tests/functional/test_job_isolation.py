"""Jobs isolate failures per item: one bad gift, payout, email or file never stops the rest of a run."""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from donations.db import now_utc
from donations.extensions import db
from donations.ledger.jobs import fill_missing_fees
from donations.ledger.models import Payout
from donations.ledger.payouts import reconcile_payouts
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import send_due
from donations.reports.jobs import run_exports
from donations.reports.models import ExportJob, ExportStatus
from donations.reports.registry import ExportParams
from donations.staff.auth import create_user
from donations.staff.models import Role
from tests.functional.test_fees import paid_gift


def test_a_balance_that_cannot_be_booked_leaves_the_other_gifts_fees(app_ctx, client, monkeypatch, caplog):
    older, newer = paid_gift(client), paid_gift(client)  # the job goes newest first
    gateway = client.application.extensions["payment_gateway"]
    real = gateway.payment_balance
    monkeypatch.setattr(gateway, "payment_balance", lambda intent: {"id": "txn_odd"} if intent ==
                        newer.stripe_payment_intent_id else real(intent))  # no amount, no fee: not bookable

    assert fill_missing_fees() == {"filled": 1, "not_settled": 0, "failed": 1}
    db.session.refresh(older)
    db.session.refresh(newer)
    assert older.fee == 63 and newer.fee is None  # tried again on the next run
    assert f"fee of donation {newer.id} not booked" in caplog.text


def test_a_payout_whose_lines_cannot_be_read_leaves_the_others(app_ctx, client, monkeypatch, caplog):
    for n, payout_id in enumerate(("po_odd", "po_fine")):
        db.session.add(Payout(stripe_payout_id=payout_id, amount=1000, currency="EUR", status="paid",
                              created=datetime(2026, 10, 1 + n, tzinfo=timezone.utc), arrival_date=date(2026, 10, 3)))
    db.session.commit()
    gateway = client.application.extensions["payment_gateway"]
    monkeypatch.setattr(gateway, "payout_balance_transactions",
                        lambda payout_id: ["not a balance transaction"] if payout_id == "po_odd" else [])

    counts = reconcile_payouts()

    assert counts["failed"] == 1 and counts["reconciled"] + counts["mismatched"] == 1
    db.session.expire_all()
    fine, odd = (db.session.scalars(select(Payout).where(Payout.stripe_payout_id == p)).one()
                 for p in ("po_fine", "po_odd"))
    assert fine.reconciled_at is not None and odd.reconciled_at is None
    assert "payout" in caplog.text and "not reconciled" in caplog.text


def outbox_email(n: int, to: str) -> OutboxEmail:
    return OutboxEmail(dedupe_key=f"isolation-{n}", template="receipt", to_address=to, subject=f"Thank you {n}",
                       body_text="Thanks", body_html="<p>Thanks</p>", message_id=f"<isolation-{n}@donations.test>",
                       attachments=[])


def test_an_email_that_cannot_be_built_leaves_the_rest_of_the_batch(app_ctx, smtp_server, monkeypatch, caplog):
    host, port, messages = smtp_server
    monkeypatch.setitem(app_ctx.config, "SMTP_URL", f"smtp://{host}:{port}")
    db.session.add_all([outbox_email(1, "ada@example.com"),
                        outbox_email(2, "bad@example.com\r\nBcc: everyone@example.com"),  # a header Python refuses
                        outbox_email(3, "grace@example.com")])
    db.session.commit()

    assert send_due() == {"sent": 2, "retry": 1, "failed": 0}

    assert sorted(m.rcpt_tos[0] for m in messages) == ["ada@example.com", "grace@example.com"]
    db.session.expire_all()
    bad = db.session.scalars(select(OutboxEmail).where(OutboxEmail.dedupe_key == "isolation-2")).one()
    assert bad.status is EmailStatus.PENDING and bad.attempts == 1 and "ValueError" in bad.last_error


def test_an_export_file_that_cannot_be_deleted_leaves_the_exports_running(app_ctx, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(app_ctx.config, "EXPORT_DIR", str(tmp_path))
    user = create_user("isolation@example.org", Role.ACCOUNTANT, "correct horse battery staple")
    db.session.flush()
    long_ago = now_utc() - timedelta(days=3)
    stuck = tmp_path / "a-directory-not-a-file"  # unlink() fails on it, as on a file we may not delete
    stuck.mkdir()
    old_file = tmp_path / "old.csv"
    old_file.write_text("old")
    params = ExportParams(date(2026, 1, 1), date(2026, 1, 31)).to_json()
    for path in (stuck, old_file):
        db.session.add(ExportJob(requested_by_id=user.id, kind="donations", format="csv", params=params,
                                 status=ExportStatus.DONE, file_path=str(path), finished_at=long_ago))
    queued = ExportJob(requested_by_id=user.id, kind="donations", format="csv", params=params)
    db.session.add(queued)
    db.session.commit()

    with caplog.at_level(logging.ERROR):
        counts = run_exports()

    assert counts == {"deleted": 1, "done": 1, "failed": 0}
    assert not old_file.exists() and stuck.exists()
    db.session.refresh(queued)
    assert queued.status is ExportStatus.DONE
    assert "not deleted" in caplog.text
