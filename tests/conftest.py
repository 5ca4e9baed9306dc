"""Test set-up: a database built by the migrations, one rolled-back transaction per test.

TEST_DATABASE_URL selects PostgreSQL (CI sets it); without it a temporary SQLite file is used.
"""
from __future__ import annotations

import os
import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from donations import create_app
from donations.config import TestConfig
from donations.extensions import db, limiter
from tests.smtp_helpers import smtp_on_loopback

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    config = TestConfig(environ={**os.environ, "DATABASE_URL": database_url},
                        instance_path=str(tmp_path_factory.mktemp("instance")))
    config.SQLALCHEMY_DATABASE_URI = database_url
    app = create_app(config)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()  # the schema exists only through the migrations
        db.session.remove()
    # Sessions join the test's outer transaction through savepoints, so the app's commits roll back too.
    db.session.session_factory.kw["join_transaction_mode"] = "create_savepoint"
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def connection(app):
    """One connection in a transaction for the whole test, rolled back at the end."""
    engines = db._app_engines[app]
    engine = engines[None]
    conn = engine.connect()
    outer = conn.begin()
    engines[None] = conn
    try:
        yield conn
    finally:
        engines[None] = engine
        outer.rollback()
        conn.close()


@pytest.fixture
def app_ctx(app, connection):
    with app.app_context():
        yield app
        db.session.remove()


def reset_limits() -> None:
    """Empty the rate limits' memory (each test starts afresh). The memory storage expires keys in a timer
    thread that reads them without a lock against reset(), so that thread is stopped first; otherwise it can
    die with a KeyError mid-reset, which fails whichever test is running."""
    timer = getattr(limiter.storage, "timer", None)
    if timer is not None:
        timer.cancel()
        timer.join()
    limiter.reset()


@pytest.fixture
def client(app, connection):
    reset_limits()  # rate limits are counted in memory across the session; each test starts afresh
    return app.test_client()


@pytest.fixture
def committing_app(app):
    """For tests that need real commits from several threads (PostgreSQL concurrency); cleans up after."""
    yield app
    with app.app_context():
        db.session.remove()
        tables = ["dashboard_snapshot_articles", "dashboard_snapshots", "consent_records", "erasures", "security_state", "ask_counts", "ledger_lines", "payouts", "closed_periods", "refunds", "disputes", "annual_statements",
                  "statement_sequences", "outbox_emails", "donations", "recurring_donations", "stripe_events",
                  "checkout_attempts", "articles", "supporters", "receipt_sequences", "sandbox_objects", "job_runs",
                  "scheduler_lock", "event_sync_cursors"]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def postgres(app):
    if not POSTGRES_URL:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://user:pass@127.0.0.1/db")


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd); yields (host, port, messages)."""
    with smtp_on_loopback() as (port, messages):
        yield "127.0.0.1", port, messages


def run_threads(count: int, target) -> list:
    """Start ``count`` threads at the same moment; returns their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index):
        barrier.wait()
        try:
            results[index] = target(index)
        except Exception as exc:  # reported to the test, which asserts on it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results
