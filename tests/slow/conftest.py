"""Fixtures for the slow tests: the app in its own process over HTTP, against the test PostgreSQL database.

These tests start real processes and need TEST_DATABASE_URL (another process cannot join the savepoint that
isolates the other tests, so they commit for real and ``committing_app`` empties the tables afterwards).
Skip them locally with ``pytest -m 'not slow'``; CI runs them.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, StripeEvent
from donations.mail.models import OutboxEmail
from tests.conftest import POSTGRES_URL
from tests.process_helpers import FlakyProxy, LiveApp


@pytest.fixture
def start_app(postgres, committing_app, tmp_path):
    """Start the app as a separate process (``start_app(database_url=None)``); every one is stopped at the end.

    Torn down before ``committing_app`` empties the tables, so no request of ours is still running then.
    """
    started: list[LiveApp] = []

    def start(database_url: str | None = None) -> LiveApp:
        live = LiveApp(database_url or POSTGRES_URL, tmp_path / f"app-{len(started)}.log")
        started.append(live)
        return live.wait_until_ready()

    yield start
    for live in started:
        live.stop()
    for live in started:
        # A killed process's backend may linger until PostgreSQL notices; it must not hold locks on the clean-up.
        wait_for_backends(committing_app, live, count=0, terminate_after=5)


@pytest.fixture
def pg_proxy(postgres):
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    proxy = FlakyProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


def app_backends(app, live: LiveApp) -> list[dict]:
    """The live app's connections to PostgreSQL, as pg_stat_activity shows them now."""
    with app.app_context(), db.engine.connect() as conn:  # a fresh transaction: a fresh snapshot of the view
        rows = conn.execute(text(
            "SELECT pid, state, wait_event_type, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = :name"), {"name": live.application_name})
        return [dict(row._mapping) for row in rows]


def terminate_backends(app, live: LiveApp) -> int:
    """pg_terminate_backend on the live app's connections only (other users of the server are left alone)."""
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = :name"),
            {"name": live.application_name}).scalar_one()


def wait_for_backends(app, live: LiveApp, *, count: int | None = None, waiting_on_lock: bool = False,
                      timeout: float = 20, terminate_after: float | None = None) -> list[dict]:
    """Poll until the live app has ``count`` connections, or one of them waits on a lock."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        backends = app_backends(app, live)
        if waiting_on_lock and any(b["wait_event_type"] == "Lock" for b in backends):
            return backends
        if count is not None and len(backends) == count:
            return backends
        if terminate_after is not None and time.monotonic() - started > terminate_after:
            terminate_backends(app, live)
        if time.monotonic() > deadline:
            raise AssertionError(f"the app's connections did not settle: {backends}\n{live.log()}")
        time.sleep(0.05)


def committed(app, make):
    """An attempt made by ``make`` as the donation form leaves it, committed so that the app's process sees it."""
    with app.app_context():
        attempt = make()
        db.session.commit()
        db.session.refresh(attempt)
        db.session.expunge(attempt)
        return attempt


def books(app) -> dict:
    """What the ledger holds: donations, succeeded donations, receipts queued, Stripe events stored and processed."""
    with app.app_context():
        def count(model, *where):
            return db.session.scalar(select(func.count()).select_from(model).where(*where))

        return {
            "donations": count(Donation),
            "succeeded": count(Donation, Donation.status == DonationStatus.SUCCEEDED),
            "receipts": count(OutboxEmail, OutboxEmail.template == "receipt"),
            "emails": count(OutboxEmail),
            "events": count(StripeEvent),
            "processed": count(StripeEvent, StripeEvent.processed_at.is_not(None)),
        }
