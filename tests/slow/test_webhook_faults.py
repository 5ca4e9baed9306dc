"""The webhook intake when the database fails or the web process dies (fault-injection scenarios 5 and 7).

Real processes on loopback, against PostgreSQL. The guarantee: the intake never answers 2xx for an event that
is not safely stored, so Stripe's redelivery of every event answered otherwise books each gift exactly once.
The database fails in two ways here, neither disturbing the other databases on the server: the app's own
connections are terminated (``pg_terminate_backend``), or a proxy between the app and PostgreSQL cuts every
connection and refuses new ones for a while, as a restart does. To stop the app in the middle of an event
without a fault hook in the app, the test holds a row lock that the event's transaction needs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, text

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, StripeEvent
from donations.mail.models import OutboxEmail
from tests.conftest import POSTGRES_URL
from tests.factories import checkout_session, event, make_attempt
from tests.slow.conftest import books, committed, terminate_backends, wait_for_backends

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NOTHING = {"donations": 0, "succeeded": 0, "receipts": 0, "emails": 0, "events": 0, "processed": 0}
ONE_GIFT = {"donations": 1, "succeeded": 1, "receipts": 1, "emails": 1, "events": 1, "processed": 1}


def deliver_in_background(live, evt) -> tuple[threading.Thread, list]:
    """Deliver ``evt`` from a thread; the list receives the answer, or the exception when none came."""
    result: list = []

    def run():
        try:
            result.append(live.deliver(evt, timeout=30))
        except Exception as exc:  # the test asserts on it
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def assert_unavailable(answer) -> None:
    """A 503 in JSON that says why: Stripe retries it, and nothing in it is a traceback."""
    assert answer.status == 503, (answer.status, answer.body[:500])
    assert answer.json["error"].startswith("The database is unavailable")


#: Where the test stops the event's transaction: the row it locks, and the statement the app then waits in.
LOCK_POINTS = {
    "before the donation is written": (
        "SELECT id FROM checkout_attempts WHERE id = :attempt FOR UPDATE", "checkout_attempts"),
    # record_checkout_session flushes the donation, then mark_succeeded takes the year's receipt number.
    "after the donation is written, before the commit": (
        "SELECT year FROM receipt_sequences WHERE year = :year FOR UPDATE", "receipt_sequences"),
}


@pytest.mark.parametrize("point", LOCK_POINTS)
def test_web_process_killed_in_the_middle_of_an_event_books_it_once_on_redelivery(start_app, committing_app, point):
    first = start_app()
    attempt = committed(committing_app, make_attempt)
    now = datetime.now(timezone.utc)
    evt = event("checkout.session.completed", checkout_session(attempt), created=int(now.timestamp()))
    lock, table = LOCK_POINTS[point]

    with committing_app.app_context(), db.engine.connect() as holder:
        holder.execute(text("INSERT INTO receipt_sequences (year, last_number) VALUES (:year, 0) "
                            "ON CONFLICT DO NOTHING"), {"year": now.year})
        holder.commit()
        holder.execute(text(lock), {"attempt": attempt.id, "year": now.year})  # held until the rollback below
        thread, result = deliver_in_background(first, evt)
        [blocked] = [b for b in wait_for_backends(committing_app, first, waiting_on_lock=True)
                     if b["wait_event_type"] == "Lock"]
        assert table in blocked["query"]

        first.kill9()
        thread.join(30)
        assert isinstance(result[0], OSError)  # no answer at all: Stripe will deliver again
        holder.rollback()

    wait_for_backends(committing_app, first, count=0)  # PostgreSQL rolls the dead process's transaction back
    assert books(committing_app) == NOTHING

    second = start_app()
    answer = second.deliver(evt)
    again = second.deliver(evt)

    assert (answer.status, again.status) == (200, 200)
    assert answer.json["outcome"].endswith("succeeded")
    assert again.json["outcome"] == "duplicate"
    assert books(committing_app) == ONE_GIFT


def test_connection_cut_in_the_middle_of_an_event_is_answered_503_and_booked_on_redelivery(start_app,
                                                                                          committing_app):
    live = start_app()
    attempt = committed(committing_app, make_attempt)
    evt = event("checkout.session.completed", checkout_session(attempt))

    with committing_app.app_context(), db.engine.connect() as holder:
        holder.execute(text("SELECT id FROM checkout_attempts WHERE id = :id FOR UPDATE"), {"id": attempt.id})
        thread, result = deliver_in_background(live, evt)
        wait_for_backends(committing_app, live, waiting_on_lock=True)
        assert terminate_backends(committing_app, live) >= 1
        thread.join(30)
        holder.rollback()

    assert_unavailable(result[0])
    assert books(committing_app) == NOTHING
    answer = live.deliver(evt)  # Stripe retries; the app has reconnected by itself
    assert answer.status == 200 and answer.json["outcome"].endswith("succeeded")
    assert books(committing_app) == ONE_GIFT


def test_database_down_is_answered_503_and_the_app_reconnects_when_it_is_back(start_app, committing_app, pg_proxy):
    live = start_app(pg_proxy.url_for(POSTGRES_URL))
    assert live.deliver(event("customer.created", {"id": "cus_test_warm", "object": "customer"})).status == 200
    attempt = committed(committing_app, make_attempt)
    evt = event("checkout.session.completed", checkout_session(attempt))

    pg_proxy.down()
    answers = [live.deliver(evt) for _ in range(3)]
    assert books(committing_app) == {**NOTHING, "events": 1, "processed": 1}  # only the warm-up event
    pg_proxy.up()
    answer = live.deliver(evt)

    for down in answers:
        assert_unavailable(down)
    assert answer.status == 200 and answer.json["outcome"].endswith("succeeded")
    assert "Traceback" not in live.log()


SESSIONS = 20
STRIPE_THREADS = 8
#: How many times the database fails during the burst.
FAULTS = {"restarts": 4, "terminated connections": 40, "cluster restart": 1}
#: The real PostgreSQL restart stops every database of the cluster: only where the tests have it to
#: themselves (CI sets this; locally other work may share the server).
REAL_RESTART = os.environ.get("DONATIONS_TEST_PG_RESTART") == "1" and shutil.which("pg_ctlcluster")


def restart_cluster() -> None:
    """``pg_ctlcluster … restart`` (fast shutdown: every connection cut), then wait until it answers again."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart", "-m", "fast"],
                   check=True, capture_output=True, timeout=60)
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back after the restart")


@pytest.mark.parametrize("fault", ["restarts", "terminated connections", pytest.param(
    "cluster restart", marks=pytest.mark.skipif(not REAL_RESTART, reason="restarts the whole PostgreSQL cluster: "
                                                "set DONATIONS_TEST_PG_RESTART=1 where the tests have it alone (CI)"))])
def test_burst_of_deliveries_through_database_failures_stores_every_event_and_books_each_gift_once(
        start_app, committing_app, pg_proxy, fault):
    live = start_app(pg_proxy.url_for(POSTGRES_URL) if fault == "restarts" else None)
    attempts = [committed(committing_app, lambda i=i: make_attempt(email=f"reader{i}@example.com"))
                for i in range(SESSIONS)]
    sessions = [checkout_session(attempt) for attempt in attempts]
    events = [event(kind, session) for session in sessions
              for kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded")]
    answers: dict[str, list] = {evt["id"]: [] for evt in events}
    finished = threading.Event()

    def stripe(share: list[dict]) -> None:
        """Deliver each event until it is answered 2xx, as Stripe retries (much faster here)."""
        for evt in share:
            for _ in range(100):
                try:
                    answer = live.deliver(evt, timeout=30)
                except OSError as exc:
                    answers[evt["id"]].append(exc)
                    continue
                answers[evt["id"]].append(answer)
                if 200 <= answer.status < 300:
                    break
                time.sleep(0.05)

    injected = []

    def break_the_database() -> None:
        """A few faults while the burst runs, then none, so that Stripe's retries get through at last."""
        time.sleep(0.1)
        for _ in range(FAULTS[fault]):
            if finished.is_set():
                return
            if fault == "restarts":
                pg_proxy.down()  # every connection cut, new ones refused for a moment
                time.sleep(0.25)
                pg_proxy.up()
                injected.append(1)
                time.sleep(0.5)
            elif fault == "cluster restart":
                restart_cluster()  # PostgreSQL itself goes down and comes back
                injected.append(1)
            else:
                injected.append(terminate_backends(committing_app, live))
                time.sleep(0.05)

    saboteur = threading.Thread(target=break_the_database)
    saboteur.start()
    workers = [threading.Thread(target=stripe, args=(events[i::STRIPE_THREADS],)) for i in range(STRIPE_THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    finished.set()
    saboteur.join(30)

    delivered = [a for per_event in answers.values() for a in per_event]
    assert [a for a in delivered if isinstance(a, Exception)] == []
    assert {a.status for a in delivered} <= {200, 503}, live.log()  # a 500's traceback is in the app's log
    assert "Traceback" not in live.log()  # every failure was the intake's own 503, none an unhandled error
    for answer in delivered:
        if answer.status == 503:
            assert_unavailable(answer)
    unanswered = {i: [a.status for a in per_event] for i, per_event in answers.items() if per_event[-1].status != 200}
    assert unanswered == {}, live.log()  # each event answered 2xx at last
    assert sum(injected) > 0

    if fault in ("restarts", "cluster restart"):
        assert any(a.status == 503 for a in delivered)  # deliveries met the database down
    # Nothing answered 2xx is missing (no event was delivered again after its 2xx), and nothing is booked twice.
    with committing_app.app_context():
        stored = {e.id: e for e in db.session.scalars(select(StripeEvent))}
        assert set(stored) == set(answers)
        assert all(e.processed_at is not None for e in stored.values())
        donations = db.session.scalars(select(Donation)).all()
        assert sorted(d.stripe_checkout_session_id for d in donations) == sorted(s["id"] for s in sessions)
        assert {d.status for d in donations} == {DonationStatus.SUCCEEDED}
        receipts = db.session.scalars(select(OutboxEmail.dedupe_key)).all()
        assert sorted(receipts) == sorted(f"receipt:{d.id}" for d in donations)
