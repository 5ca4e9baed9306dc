"""The renewal-day benchmark end to end (its smoke run): seeded gifts, signed invoice.paid events through gunicorn
and wrk, every one booked once with its receipt, the results files written.

No timing is asserted: the machine is shared. What must hold is the exactness: every event answered 2xx, one
donation and one receipt per event, nothing of the run left in the database.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from donations.bench import renewals
from donations.bench.load import GUNICORN_SETTINGS
from donations.extensions import db
from donations.ledger.models import Donation, RecurringDonation, StripeEvent, Supporter
from tests.bench.conftest import bench_env, run_bench

pytestmark = pytest.mark.slow


def test_smoke_run_books_every_event_once_and_writes_the_section(postgres, committing_app, wrk, tmp_path):
    output = tmp_path / "benchmarks.json"
    done = run_bench(bench_env(committing_app.config["SQLALCHEMY_DATABASE_URI"]), "renewals", "--smoke",
                     "--output", str(output))

    assert done.returncode == 0, done.stdout + done.stderr
    section = json.loads(output.read_text())["sections"]["renewals"]
    assert section["smoke"] is True
    empty, app = section["rows"]
    assert empty["verdict"] == "reference" and empty["non_2xx"] == 0
    assert app["verdict"] == "not judged (smoke run)"
    assert app["donations"] == [200] and app["receipts"] == [200] and app["non_2xx"] == 0
    assert app["events_per_s"] > 0 and app["in_books_s"] is not None and app["ratio"] is not None
    threads = GUNICORN_SETTINGS["workers"] * GUNICORN_SETTINGS["threads"]
    assert app["counter_waiting"] is not None and 0 <= app["counter_waiting"] < threads  # sampled, one holds it
    page = output.with_suffix(".md").read_text()
    assert "Smoke run" in page and "POST /stripe/webhook (invoice.paid)" in page
    with committing_app.app_context():  # the command removes what its runs wrote
        assert db.session.scalar(select(func.count()).select_from(Donation)) == 0
        assert db.session.scalar(select(func.count()).select_from(RecurringDonation)) == 0
        assert db.session.scalar(select(func.count()).select_from(Supporter)) == 0
        assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def test_invoice_paid_events_are_shaped_as_the_pinned_api_version_sends_them(postgres, committing_app):
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with committing_app.app_context():
        gifts = renewals.seed_gifts(db.engine, 10, now)
        try:
            assert [g.subscription for g in gifts] == [f"sub_renew{n}" for n in range(10)]
            assert {g.currency for g in gifts} == {"eur", "usd", "gbp", "jpy"}
            yearly = next(g for g in gifts if g.yearly)
            invoice = renewals.invoice_paid_event(yearly, 3, now)["data"]["object"]
            assert invoice["parent"]["subscription_details"]["subscription"] == yearly.subscription
            assert invoice["payments"]["data"][0]["payment"]["payment_intent"].startswith("pi_")
            assert invoice["amount_paid"] == yearly.amount and invoice["currency"] == yearly.currency
            line = invoice["lines"]["data"][0]["period"]
            assert line["end"] - line["start"] == 365 * 86400
            assert db.session.scalar(select(func.count()).select_from(RecurringDonation)
                                     .where(RecurringDonation.status == "active")) == 10
        finally:
            renewals.clean(db.engine)
        assert db.session.scalar(select(func.count()).select_from(Supporter)) == 0
