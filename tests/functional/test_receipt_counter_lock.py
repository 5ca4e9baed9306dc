"""The year's receipt counter is the one row every gift of the year waits for (its lock lasts until the commit),
so mark_succeeded writes the donation's booking before it takes the number and only the number after."""
from __future__ import annotations

from sqlalchemy import event as sa_event

from donations.extensions import db
from tests.factories import checkout_session, event, make_attempt, post_event


def test_a_paid_gift_is_booked_in_one_update_before_the_receipt_counter_is_locked(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        answer = post_event(client, event("checkout.session.completed", checkout_session(attempt)))
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)

    assert answer.status_code == 200
    updates = [s for s in statements if s.startswith("UPDATE donations")]
    counter = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO receipt_sequences"))
    before = [s for s in statements[:counter] if s.startswith("UPDATE donations")]
    after = [s for s in statements[counter:] if s.startswith("UPDATE donations")]
    assert len(updates) == 2, updates
    assert len(before) == 1 and "status=" in before[0] and "booked_on=" in before[0] and "booking_note=" in before[0]
    assert len(after) == 1 and "receipt_number=" in after[0] and "status=" not in after[0]


def test_the_receipt_counter_is_taken_in_one_statement_and_counts_on(app_ctx):
    from donations.ledger.operations import next_receipt_number

    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        numbers = [next_receipt_number(2031) for _ in range(3)]
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)

    assert numbers == ["2031-000001", "2031-000002", "2031-000003"]
    counter = [s.split(" (")[0] for s in statements if "receipt_sequences" in s]
    assert counter == ["INSERT INTO receipt_sequences"] * 3
