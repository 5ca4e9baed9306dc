"""The year's receipt counter is the one row every gift of the year waits for (its lock lasts until the commit),
so the receipt number is taken last: everything else of the event's transaction is written first, and after the
counter only the statements that carry the number come before the commit. Numbers stay gap-free: taken,
written and committed together, or rolled back together."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger import operations as ledger
from donations.ledger.models import Donation, DonationStatus, Frequency, ReceiptSequence
from donations.mail.models import OutboxEmail
from tests.factories import checkout_session, event, make_attempt, post_event


def record_statements(statements: list[str]):
    def record(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    return record


def test_a_paid_gift_writes_everything_else_before_the_receipt_counter_and_only_the_number_after(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    statements: list[str] = []
    record = record_statements(statements)

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        answer = post_event(client, event("checkout.session.completed", checkout_session(attempt)))
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)

    assert answer.status_code == 200
    [counter] = [i for i, s in enumerate(statements) if "receipt_sequences" in s]
    before, after = statements[:counter], statements[counter + 1:]
    # Before the lock: the donation's booking, its receipt email (rendered), the event marked processed.
    assert any(s.startswith("UPDATE donations") and "status=" in s and "booked_on=" in s for s in before)
    assert any(s.startswith("INSERT INTO outbox_emails") for s in before)
    assert any(s.startswith("UPDATE stripe_events") and "processed_at=" in s for s in before)
    # Under the lock: the number into the donation and its email (PostgreSQL: in the counter's own statement),
    # then the commit (here the release of the test's savepoint), nothing else.
    if db.engine.dialect.name == "postgresql":
        assert statements[counter].startswith("WITH counter AS")
        assert "UPDATE donations SET receipt_number" in statements[counter]
        assert "UPDATE outbox_emails SET subject" in statements[counter]
        carrying = []
    else:
        carrying = after[:2]
        assert carrying[0].startswith("UPDATE donations SET receipt_number=")
        assert carrying[1].startswith("UPDATE outbox_emails SET subject=replace(")
    assert [s.split(" ")[0] for s in after[len(carrying):]] == ["RELEASE"], after

    donation = db.session.scalars(select(Donation)).one()
    email = db.session.scalars(select(OutboxEmail)).one()
    assert donation.receipt_number is not None
    for part in (email.subject, email.body_text, email.body_html):
        assert donation.receipt_number in part and "receipt-number-" not in part


def test_the_receipt_counter_is_taken_in_one_statement_and_counts_on(app_ctx):
    statements: list[str] = []
    record = record_statements(statements)

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        numbers = [ledger.next_receipt_number(2031) for _ in range(3)]
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)

    assert numbers == ["2031-000001", "2031-000002", "2031-000003"]
    counter = [s.split(" (")[0] for s in statements if "receipt_sequences" in s]
    assert counter == ["INSERT INTO receipt_sequences"] * 3


def pending_donation(email: str) -> Donation:
    donation = Donation(supporter=ledger.get_or_create_supporter(email), amount=1000, currency="EUR",
                        frequency=Frequency.ONE_OFF, status=DonationStatus.PENDING)
    db.session.add(donation)
    db.session.flush()
    return donation


def test_receipt_numbers_taken_at_commit_count_on_in_the_usual_format(app_ctx):
    db.session.add(ReceiptSequence(year=2032, last_number=999_998))
    db.session.flush()
    donations = [pending_donation(f"reader{n}@example.com") for n in range(3)]
    paid_at = datetime(2032, 3, 1, 12, tzinfo=UTC)

    for donation in donations:
        ledger.mark_succeeded(donation, paid_at)
    assert [d.receipt_number for d in donations] == [None, None, None]  # not before the commit
    db.session.commit()

    assert [d.receipt_number for d in donations] == ["2032-999999", "2032-1000000", "2032-1000001"]
    for donation in donations:
        email = db.session.scalars(select(OutboxEmail).where(OutboxEmail.dedupe_key == f"receipt:{donation.id}")
                                   ).one()
        assert donation.receipt_number in email.subject and donation.receipt_number in email.body_text


def test_a_succeeded_gift_undone_by_its_savepoint_takes_no_number(app_ctx):
    donation = pending_donation("reader@example.com")
    paid_at = datetime(2033, 3, 1, 12, tzinfo=UTC)

    with pytest.raises(RuntimeError), db.session.begin_nested():  # as an illegal transition undoes an event
        ledger.mark_succeeded(donation, paid_at)
        raise RuntimeError("undone")
    db.session.commit()

    assert donation.status is DonationStatus.PENDING and donation.receipt_number is None
    assert db.session.get(ReceiptSequence, 2033) is None  # no number taken, so none is missing
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0


def test_a_failure_after_the_number_is_taken_leaves_no_gap(app_ctx, client):
    first, second = make_attempt(), make_attempt()
    db.session.commit()

    def fail_once_numbered(conn, cursor, statement, *args):
        # The counter has answered with the first number: the process fails before the commit.
        if "receipt_sequences" in statement:
            raise RuntimeError("failed after the number was taken")

    sa_event.listen(db.engine, "after_cursor_execute", fail_once_numbered)
    try:
        failed = post_event(client, event("checkout.session.completed", checkout_session(first)))
    finally:
        sa_event.remove(db.engine, "after_cursor_execute", fail_once_numbered)

    answer = post_event(client, event("checkout.session.completed", checkout_session(second)))

    assert failed.status_code == 500  # not 2xx: Stripe delivers the event again
    assert answer.status_code == 200
    donation = db.session.scalars(select(Donation)).one()  # the first gift's event was not booked: Stripe retries
    assert donation.attempt_id == second.id
    assert donation.receipt_number == f"{donation.paid_at.year}-000001"
