"""`flask --app app bench seed` on PostgreSQL: a small seed is complete, consistent and usable by the staff pages.

Skips unless TEST_DATABASE_URL points at PostgreSQL, except the refusal of SQLite, which runs on SQLite.
"""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from sqlalchemy import text

from donations.bench import seed as seeding
from donations.extensions import db
from tests.conftest import POSTGRES_URL
from tests.staff_helpers import signed_in

DONATIONS, SUPPORTERS = 2000, 400


def invoke(app, *args: str):
    return app.test_cli_runner().invoke(args=["bench", "seed", *args])


@pytest.fixture
def seeded(postgres, committing_app):
    app = committing_app
    result = invoke(app, "--donations", str(DONATIONS), "--supporters", str(SUPPORTERS), "--seed", "3", "--force")
    assert result.exit_code == 0, result.output
    yield app, result
    with app.app_context(), db.engine.begin() as conn:  # the seed's own campaigns, after what names them
        conn.execute(text(f"TRUNCATE {', '.join(seeding.TABLES)} CASCADE"))
        conn.execute(text("DELETE FROM campaigns WHERE slug LIKE 'bench-%'"))
        # Signing in on the committing app wrote a staff user, their session and audit entries: gone too, or
        # later tests that count audit entries find them.
        conn.execute(text("TRUNCATE audit_entries, staff_sessions, staff_users CASCADE"))


def scalar(app, sql: str):
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_seed_writes_the_requested_counts_and_reports_them(seeded):
    app, result = seeded

    assert scalar(app, "SELECT count(*) FROM donations") == DONATIONS
    assert scalar(app, "SELECT count(*) FROM supporters") == SUPPORTERS
    assert "donations: 2,000" in result.output and "supporters: 400" in result.output
    assert "seeded in" in result.output
    assert scalar(app, "SELECT count(*) FROM recurring_donations") > 0
    assert scalar(app, "SELECT count(*) FROM donations WHERE recurring_donation_id IS NOT NULL") > 0
    assert scalar(app, "SELECT count(*) FROM refunds") > 0
    assert scalar(app, "SELECT count(*) FROM consent_records") > 0
    assert scalar(app, "SELECT count(*) FROM supporters WHERE mailing_consent_at IS NOT NULL") > 0
    assert scalar(app, "SELECT count(*) FROM campaign_variants v JOIN campaigns c ON c.id = v.campaign_id "
                       "WHERE c.slug LIKE 'bench-%'") >= 24
    assert scalar(app, "SELECT count(*) FROM ask_counts") > 0
    assert scalar(app, "SELECT count(*) FROM checkout_attempts") > 0


def test_every_currency_is_present_and_sums_are_whole_minor_units(seeded):
    app, _ = seeded
    with app.app_context(), db.engine.connect() as conn:
        sums = dict(conn.execute(text("SELECT currency, sum(amount) FROM donations GROUP BY currency")).all())

    assert set(sums) == {"EUR", "USD", "GBP", "JPY"}
    assert all(isinstance(total, int) or Decimal(total) == int(total) for total in sums.values())


def test_receipts_and_ids_continue_after_the_seed(seeded):
    app, _ = seeded
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT receipt_number) = count(receipt_number) "
                                 "FROM donations")).scalar_one()
        # The counter of each year is where the seeded numbers end: the next receipt is new.
        for year, last in conn.execute(text("SELECT year, last_number FROM receipt_sequences")).all():
            assert conn.execute(text("SELECT max(receipt_number) FROM donations WHERE receipt_number LIKE :p"),
                                {"p": f"{year}-%"}).scalar_one() == f"{year}-{last:06d}"
        for table in ("donations", "supporters", "payouts", "ledger_lines"):
            assert conn.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) > "
                                     f"(SELECT max(id) FROM {table})")).scalar_one()


def test_every_payout_is_the_sum_of_its_lines_and_the_export_agrees(seeded):
    app, _ = seeded
    assert scalar(app, "SELECT count(*) FROM payouts p WHERE p.amount <> (SELECT coalesce(sum(amount), 0) "
                       "FROM ledger_lines l WHERE l.payout_id = p.id AND l.kind <> 'payout')") == 0
    payout = scalar(app, "SELECT stripe_payout_id FROM payouts WHERE currency = 'EUR' AND status = 'paid' "
                         "ORDER BY amount DESC LIMIT 1")

    result = app.test_cli_runner().invoke(args=["export", "payouts", "--payout", payout])

    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["difference"] == "0.00" and row["net"] == row["bank_amount"]
    result = app.test_cli_runner().invoke(args=["export", "ledger", "--payout", payout])
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    stripe = sum(Decimal(r["debit"] or 0) - Decimal(r["credit"] or 0)
                 for r in lines if r["account"] == "1210 Stripe balance")
    assert lines and stripe == 0  # everything that came into the balance left it for the bank


def test_the_dashboard_and_supporter_search_answer_on_seeded_data(seeded, client):
    signed_in(client, "admin")

    assert client.get("/staff/").status_code == 200
    found = client.get("/staff/supporters?q=supporter12%40bench.example")
    assert found.status_code == 200
    assert "supporter12@bench.example" in found.get_data(as_text=True)
    assert client.get("/staff/supporters?currency=JPY").status_code == 200


def test_the_seeded_campaigns_answer_in_the_embed_and_the_api_with_presets_in_every_currency(seeded, client):
    app, _ = seeded
    embed = client.get("/embed/v1/campaigns.json?locale=en")
    assert embed.status_code == 200, embed.get_data(as_text=True)[:500]
    for currency in app.config["CURRENCIES"]:  # the ones the publisher takes
        answer = client.get(f"/api/v1/campaigns/bench-01?currency={currency}")
        assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
        body = answer.get_json()
        assert body["currency"] == currency and all(body["presets"].values()), body


def test_a_second_seed_without_force_is_refused(seeded):
    app, _ = seeded

    result = invoke(app, "--donations", "10", "--supporters", "5")

    assert result.exit_code == 1
    assert "already holds data" in result.output and "--force" in result.output
    assert scalar(app, "SELECT count(*) FROM donations") == DONATIONS


def test_keep_reuses_a_database_holding_the_same_counts_and_refuses_other_data(seeded):
    app, _ = seeded
    first_id = scalar(app, "SELECT min(id) FROM donations")

    kept = invoke(app, "--donations", str(DONATIONS), "--supporters", str(SUPPORTERS), "--keep")

    assert kept.exit_code == 0, kept.output
    assert "kept (--keep)" in kept.output
    assert scalar(app, "SELECT min(id) FROM donations") == first_id  # nothing rewritten
    other = invoke(app, "--donations", str(DONATIONS + 1), "--supporters", str(SUPPORTERS), "--keep")
    assert other.exit_code == 1 and "already holds data" in other.output
    assert scalar(app, "SELECT count(*) FROM donations") == DONATIONS


def test_seed_refuses_sqlite_with_a_clear_message(app):
    if POSTGRES_URL:
        pytest.skip("runs on SQLite")
    result = invoke(app, "--donations", "10", "--supporters", "5")

    assert result.exit_code == 1
    assert "PostgreSQL" in result.output and "Traceback" not in result.output


def test_the_same_seed_writes_the_same_data_again_and_force_replaces_it(seeded):
    app, _ = seeded
    fingerprint = ("SELECT md5(string_agg(concat_ws(':', id, supporter_id, amount, currency, status, receipt_number, "
                   "paid_at, recurring_donation_id), ',' ORDER BY id)) FROM donations")
    first = scalar(app, fingerprint)

    again = invoke(app, "--donations", str(DONATIONS), "--supporters", str(SUPPORTERS), "--seed", "3", "--force")

    assert again.exit_code == 0, again.output
    assert scalar(app, "SELECT count(*) FROM donations") == DONATIONS
    assert scalar(app, fingerprint) == first
