"""POST /stripe/webhook while the database fails: 503 in JSON (Stripe retries it), nothing stored, booked on retry.

The fast, in-process half of fault-injection scenario 5; tests/slow/test_webhook_faults.py cuts real connections.
"""
from __future__ import annotations

import logging

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from donations.extensions import db
from donations.ledger.models import Donation, StripeEvent
from donations.mail.models import OutboxEmail
from tests.factories import checkout_session, event, make_attempt, post_event


def booked() -> tuple[int, int, int]:
    """(Stripe events stored, donations, emails queued)."""
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (StripeEvent, Donation, OutboxEmail))


def lost(statement: str) -> OperationalError:
    return OperationalError(statement, {}, Exception("server closed the connection unexpectedly"))


def assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert response.is_json
    assert response.get_json()["error"] == ("The database is unavailable; the event was not stored. "
                                            "Stripe will retry.")


def test_connection_lost_at_commit_is_answered_503_and_the_retry_books_the_gift(app_ctx, client, monkeypatch,
                                                                               caplog):
    attempt = make_attempt()
    db.session.commit()
    evt = event("checkout.session.completed", checkout_session(attempt))

    def commit():
        raise lost("COMMIT")

    monkeypatch.setattr(db.session, "commit", commit)
    with caplog.at_level(logging.WARNING, logger="donations.payments.webhooks"):
        response = post_event(client, evt)
    monkeypatch.undo()

    assert_unavailable(response)
    assert booked() == (0, 0, 0)
    assert f"webhook {evt['id']} (checkout.session.completed) not stored" in caplog.text
    retry = post_event(client, evt)
    assert retry.status_code == 200 and retry.get_json()["outcome"].endswith("succeeded")
    assert booked() == (1, 1, 1)


def test_database_unreachable_when_the_event_is_looked_up_is_answered_503(app_ctx, client, connection):
    attempt = make_attempt()
    db.session.commit()
    evt = event("checkout.session.completed", checkout_session(attempt))

    def unreachable(conn, cursor, statement, parameters, context, executemany):
        if "stripe_events" in statement:
            raise lost(statement)

    sa_event.listen(connection, "before_cursor_execute", unreachable)
    try:
        response = post_event(client, evt)
    finally:
        sa_event.remove(connection, "before_cursor_execute", unreachable)

    assert_unavailable(response)
    assert booked() == (0, 0, 0)
    assert post_event(client, evt).status_code == 200
    assert booked() == (1, 1, 1)


def test_other_database_errors_are_not_called_unavailable(app_ctx, client, monkeypatch):
    """Only a lost or refused connection is a 503; a bug stays the generic 500 (Stripe retries both)."""
    attempt = make_attempt()
    db.session.commit()

    def broken(event):
        raise RuntimeError("a bug")

    monkeypatch.setattr("donations.payments.webhooks.receive_event", broken)
    response = post_event(client, event("checkout.session.completed", checkout_session(attempt)))

    assert response.status_code == 500 and response.is_json
    assert booked() == (0, 0, 0)


def test_a_lost_connection_that_surfaces_as_another_error_is_still_503(app_ctx, client, monkeypatch, caplog):
    """SQLAlchemy often reports a lost connection while cleaning up (a savepoint it cannot release, a rollback on
    a dead connection) as an error of its own, raised from the lost connection; and the rollback itself may fail.
    It is still the database being away: 503, so Stripe retries, and the retry books the gift."""
    from sqlalchemy.exc import PendingRollbackError

    attempt = make_attempt()
    db.session.commit()
    evt = event("checkout.session.completed", checkout_session(attempt))

    def cleanup_fails(event):
        try:
            raise lost("RELEASE SAVEPOINT sa_savepoint_1")
        except OperationalError:  # raised while handling it: the lost connection is its context
            raise PendingRollbackError("This Session's transaction has been rolled back", None, None)  # noqa: B904

    def rollback_fails():
        raise lost("ROLLBACK")

    invalidated = []
    monkeypatch.setattr("donations.payments.webhooks.receive_event", cleanup_fails)
    monkeypatch.setattr(db.session(), "rollback", rollback_fails)
    monkeypatch.setattr(db.session(), "invalidate", lambda: invalidated.append(True))  # the test's connection stays
    with caplog.at_level(logging.WARNING):
        response = post_event(client, evt)
    monkeypatch.undo()

    assert_unavailable(response)
    assert invalidated == [True]  # the dead connection is not handed to the next request
    assert "Traceback" not in caplog.text and "rollback failed" in caplog.text
    assert booked() == (0, 0, 0)
    assert post_event(client, evt).status_code == 200
    assert booked() == (1, 1, 1)
