"""REPORTS_DATABASE_URL: reports and exports read from a replica; everything written stays on the primary.

Two SQLite files stand for the primary and its replica (the test needs no second PostgreSQL database, so it runs
the same way with or without TEST_DATABASE_URL); a gift booked only in the "replica" proves where a report reads.
"""
from __future__ import annotations

import os

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from donations import config as app_config
from donations import create_app
from donations.extensions import db
from donations.reports.replica import reads
from donations.staff.models import AuditEntry
from tests.functional.test_export import paid_donation, utc

ONLY_THERE = "only-on-the-replica@example.org"


def make_app(tmp_path, name: str, database: str, reports: str | None = None):
    environ = {**os.environ, "DATABASE_URL": database}
    environ.pop("REPORTS_DATABASE_URL", None)
    if reports:
        environ["REPORTS_DATABASE_URL"] = reports
    config = app_config.TestConfig(environ=environ, instance_path=str(tmp_path / name))
    config.SQLALCHEMY_DATABASE_URI = database
    return create_app(config)


@pytest.fixture
def databases(tmp_path):
    """(primary URL, replica URL): both migrated; one gift booked in the replica only."""
    urls = {name: f"sqlite:///{tmp_path / name}.sqlite3" for name in ("primary", "replica")}
    for name, url in urls.items():
        app = make_app(tmp_path, f"build-{name}", url)
        with app.app_context():
            upgrade()
            if name == "replica":
                paid_donation(app.test_client(), utc(2026, 3, 10, 12), email=ONLY_THERE)
            db.session.remove()
            db.engine.dispose()
    return urls["primary"], urls["replica"]


def dispose(app) -> None:
    """Close the pools once the app context (and with it the reports session) has ended."""
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def export_march(app):
    return app.test_cli_runner().invoke(args=["export", "donations", "--from", "2026-03-01", "--to", "2026-03-31"])


def audit_entries(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(AuditEntry.__table__))
    engine.dispose()
    return count


def test_an_export_reads_the_replica_and_audits_on_the_primary(databases, tmp_path):
    primary, replica = databases
    app = make_app(tmp_path, "web", primary, reports=replica)

    result = export_march(app)

    assert result.exit_code == 0, result.output
    assert ONLY_THERE in result.stdout  # the gift exists only in the replica
    assert audit_entries(primary) == 1  # the export's audit entry went to the primary
    assert audit_entries(replica) == 0
    dispose(app)


def test_without_it_reports_read_the_main_database(databases, tmp_path):
    primary, _ = databases
    app = make_app(tmp_path, "web", primary)

    result = export_march(app)

    assert result.exit_code == 0, result.output
    assert ONLY_THERE not in result.stdout
    with app.app_context():
        assert reads() is db.session
        db.engine.dispose()


def test_the_reports_session_refuses_to_write(databases, tmp_path):
    primary, replica = databases
    app = make_app(tmp_path, "web", primary, reports=replica)
    with app.app_context():
        with pytest.raises(OperationalError, match="readonly"):
            reads().execute(text("DELETE FROM audit_entries"))
    dispose(app)


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", "REPORTS_DATABASE_URL is not a database URL"),
    ("mysql://reports@replica/donations", "REPORTS_DATABASE_URL must be the same kind of database"),
])
def test_a_wrong_reports_url_stops_the_app_with_a_clear_message(url, message):
    config = app_config.Config({"DATABASE_URL": "postgresql+psycopg://donations@db/donations",
                                "REPORTS_DATABASE_URL": url})
    with pytest.raises(app_config.ConfigError, match=message):
        config.validate()


def test_the_reports_session_refuses_to_write_on_postgresql(tmp_path):
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://user:pass@127.0.0.1/db")
    app = make_app(tmp_path, "web", url, reports=url)  # the primary itself named as the replica: still read-only
    with app.app_context():
        with pytest.raises(DBAPIError, match="read-only transaction"):
            reads().execute(text("DELETE FROM audit_entries"))
        reads().rollback()
        assert reads().scalar(text("SELECT 1")) == 1  # reads go on after the refused write
    dispose(app)
