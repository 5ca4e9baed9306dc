"""The accountant's books as files: the ledger journal and the payouts summary reconcile to the bank,
in CSV and XLSX, by period and by payout; the monthly report carries the month's ledger."""
from __future__ import annotations

import csv
import email
import io
from datetime import date, datetime, timezone
from decimal import Decimal
from email import policy

import pytest
from flask import current_app
from openpyxl import load_workbook

from donations.extensions import db
from donations.ledger.payouts import book_balance, close_books, reconcile_payouts
from donations.mail.sender import send_due
from donations.reports.books import LEDGER_COLUMNS, PAYOUT_COLUMNS
from donations.reports.jobs import send_scheduled_reports
from donations.reports.schedule import ReportKind, get_schedule
from tests.factories import event, post_event
from tests.functional.test_payouts import T0, balance, books, fake_balance  # noqa: F401  (fixtures)

OCTOBER = ["--from", "2026-10-01", "--to", "2026-10-31"]
STRIPE, BANK = "1210 Stripe balance", "1200 Bank"


def export(app, *args: str):
    result = app.test_cli_runner().invoke(args=["export", *args])
    assert result.exit_code == 0, result.output
    return result


def rows(result) -> list[dict]:
    return list(csv.DictReader(io.StringIO(result.stdout)))


def paid_out(client, books, extra: int = 0) -> None:
    books["payout"]["amount"] = books["bank"] + extra
    assert post_event(client, event("payout.paid", books["payout"])).status_code == 200
    reconcile_payouts()


def net(lines: list[dict], account: str) -> Decimal:
    return sum((Decimal(r["debit"] or 0) - Decimal(r["credit"] or 0) for r in lines if r["account"] == account),
               Decimal(0))


def test_a_payout_s_ledger_clears_the_stripe_balance_into_the_bank(app_ctx, books, client):
    paid_out(client, books)

    lines = rows(export(app_ctx, "ledger", "--payout", "po_1"))

    assert list(lines[0]) == LEDGER_COLUMNS
    assert len(lines) == 2 * 10  # a debit and a credit for each of the payout's ten lines
    assert net(lines, STRIPE) == 0  # everything that came into the balance left it for the bank
    assert net(lines, BANK) == Decimal("39.77")
    for journal in {r["journal"] for r in lines}:  # each journal balances on its own
        mine = [r for r in lines if r["journal"] == journal]
        assert len(mine) == 2 and sum(Decimal(r["debit"] or 0) - Decimal(r["credit"] or 0) for r in mine) == 0
    assert {r["payout_id"] for r in lines} == {"po_1"}
    assert {r["currency"] for r in lines} == {"EUR"}
    by_account = {account: net(lines, account) for account in {r["account"] for r in lines}}
    assert by_account == {STRIPE: 0, BANK: Decimal("39.77"), "4000 Donations": Decimal("-102.50"),
                          "6100 Stripe fees": Decimal("17.73"), "4010 Refunds": Decimal("20.00"),
                          "4020 Chargebacks": Decimal("25.00")}
    gift_b = next(r for r in lines if r["kind"] == "gift" and r["reference"] == "txn_b")
    assert gift_b["description"].endswith("(30.00 USD)")  # a USD gift settled in euros says what was given


def test_the_payouts_export_shows_each_payout_s_parts_and_the_bank_amount(app_ctx, books, client):
    paid_out(client, books)

    [row] = rows(export(app_ctx, "payouts", *OCTOBER))

    assert list(row) == PAYOUT_COLUMNS
    assert {k: row[k] for k in ("payout_id", "status", "currency", "gross", "fees", "refunds", "disputes", "other",
                                "net", "bank_amount", "difference", "lines")} == {
        "payout_id": "po_1", "status": "paid", "currency": "EUR", "gross": "102.50", "fees": "-17.73",
        "refunds": "-20.00", "disputes": "-25.00", "other": "0.00", "net": "39.77", "bank_amount": "39.77",
        "difference": "0.00", "lines": "6"}
    assert row["arrival_date"] == "2026-10-29"


def test_a_payout_that_does_not_add_up_shows_its_difference_in_the_export(app_ctx, books, client):
    paid_out(client, books, extra=23)

    [row] = rows(export(app_ctx, "payouts", "--payout", "po_1"))

    assert (row["net"], row["bank_amount"], row["difference"]) == ("39.77", "40.00", "-0.23")


def test_donations_know_their_payout_and_can_be_exported_by_it(app_ctx, books, client):
    paid_out(client, books)

    by_payout = rows(export(app_ctx, "donations", "--payout", "po_1"))

    assert sorted(int(r["donation_id"]) for r in by_payout) == sorted(books[k].id for k in "abc")
    assert {r["payout_id"] for r in by_payout} == {"po_1"}
    b = next(r for r in by_payout if int(r["donation_id"]) == books["b"].id)
    assert (b["amount"], b["currency"], b["fee"], b["net"], b["settlement_currency"], b["exchange_rate"]) == (
        "30.00", "USD", "1.10", "26.40", "EUR", "0.916667")
    a = next(r for r in by_payout if int(r["donation_id"]) == books["a"].id)
    assert (a["amount_refunded"], a["status"]) == ("20.00", "partially_refunded")


def test_ledger_xlsx_has_a_sheet_per_currency_with_numbers_and_dates(app_ctx, books, client, tmp_path):
    paid_out(client, books)
    book_balance(balance("txn_usd", "charge", 1500, 74, {"id": "ch_usd", "object": "charge"}, currency="usd"))
    db.session.commit()
    path = tmp_path / "ledger.xlsx"

    export(app_ctx, "ledger", *OCTOBER, "--format", "xlsx", "--output", str(path))

    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["EUR", "USD"]
    eur = list(book["EUR"].iter_rows(values_only=True))
    assert list(eur[0]) == LEDGER_COLUMNS
    assert len(eur) == 1 + 2 * 10
    first = dict(zip(LEDGER_COLUMNS, eur[1]))
    assert isinstance(first["date"], datetime) and first["date"].date() == date(2026, 10, 26)
    assert isinstance(first["debit"] or first["credit"], (int, float))
    usd = [dict(zip(LEDGER_COLUMNS, r)) for r in list(book["USD"].iter_rows(values_only=True))[1:]]
    assert sorted((r["kind"], r["debit"] or -r["credit"]) for r in usd if r["account"] == STRIPE) == [
        ("fee", pytest.approx(-0.74)), ("gift", pytest.approx(15.0))]


def test_a_late_line_for_a_closed_month_is_in_the_next_month_s_ledger_with_a_note(app_ctx, books, client):
    close_books(date(2026, 10, 31), "accountant@example.org")
    book_balance(balance("txn_late", "adjustment", -500, 0, {"id": "adj_1", "object": "other"},
                         category="other_adjustment", created=T0 + 86400))
    db.session.commit()

    october = rows(export(app_ctx, "ledger", *OCTOBER))
    november = rows(export(app_ctx, "ledger", "--from", "2026-11-01", "--to", "2026-11-30"))

    assert "txn_late" not in {r["reference"] for r in october}
    late = [r for r in november if r["reference"] == "txn_late"]
    assert [r["date"] for r in late] == ["2026-11-01", "2026-11-01"]
    assert late[0]["note"] == "occurred 2026-10-27, in the period closed through 2026-10-31"
    assert {r["account"] for r in late} == {STRIPE, "1290 Stripe suspense"}


def test_ledger_accounts_follow_the_publisher_s_chart(app_ctx, books, client, monkeypatch):
    paid_out(client, books)
    monkeypatch.setitem(current_app.config, "LEDGER_ACCOUNTS",
                        {**current_app.config["LEDGER_ACCOUNTS"], "bank": "1201 Sparkasse"})

    lines = rows(export(app_ctx, "ledger", "--payout", "po_1"))

    assert net(lines, "1201 Sparkasse") == Decimal("39.77") and net(lines, BANK) == 0


def test_the_monthly_report_carries_the_month_s_ledger_as_csv(app_ctx, books, client, smtp_server, monkeypatch):
    paid_out(client, books)
    host, port, messages = smtp_server
    monkeypatch.setitem(current_app.config, "SMTP_URL", f"smtp://{host}:{port}")
    schedule = get_schedule(ReportKind.MONTHLY_ACCOUNTING)
    schedule.enabled, schedule.recipients = True, ["accounts@example.org"]
    db.session.commit()

    send_scheduled_reports(now=datetime(2026, 11, 2, 7, tzinfo=timezone.utc))
    assert send_due()["sent"] == 5  # the three gifts' receipts, the confirmation of the refund, and the report

    [message] = [m for m in (email.message_from_bytes(m.content, policy=policy.default) for m in messages)
                 if m["To"] == "accounts@example.org"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "ledger-2026-10-01-2026-10-31.csv"
    ledger = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert len(ledger) == 20 and net(ledger, STRIPE) == 0 and net(ledger, BANK) == Decimal("39.77")
    body = message.get_body(("plain",)).get_content()
    assert "EUR, Payouts: 1, To the bank: €39.77, Not adding up: 0" in body


def test_a_gift_that_arrives_after_its_month_was_closed_is_in_the_next_month_with_a_note(app_ctx, client):
    from tests.factories import checkout_session, make_attempt

    close_books(date(2026, 10, 31), "accountant@example.org")
    attempt = make_attempt()
    db.session.commit()
    paid = datetime(2026, 10, 30, 12, tzinfo=timezone.utc)  # Stripe retried this event for days
    assert post_event(client, event("checkout.session.completed", checkout_session(attempt),
                                    created=int(paid.timestamp()))).status_code == 200

    assert rows(export(app_ctx, "donations", *OCTOBER)) == []
    [row] = rows(export(app_ctx, "donations", "--from", "2026-11-01", "--to", "2026-11-30"))
    assert (row["paid_at"], row["booked_on"]) == ("2026-10-30T12:00:00Z", "2026-11-01")
    assert row["note"] == "occurred 2026-10-30, in the period closed through 2026-10-31"


def test_the_xero_ledger_follows_xero_s_manual_journal_template(app_ctx, books, client):
    paid_out(client, books)
    book_balance(balance("txn_usd", "charge", 1500, 74, {"id": "ch_usd", "object": "charge"}, currency="usd"))
    db.session.commit()

    result = export(app_ctx, "ledger-xero", "--payout", "po_1")
    lines = rows(result)

    assert result.stdout.splitlines()[0] == "*Narration,*Date,Description,*AccountCode,*TaxRate,*Amount"
    assert len(lines) == 20  # the payout's ten lines, in euros; the dollar line is not Xero's
    journals: dict[tuple[str, str], Decimal] = {}
    for line in lines:  # Xero makes one journal of the rows with the same narration and date
        key = (line["*Narration"], line["*Date"])
        journals[key] = journals.get(key, Decimal(0)) + Decimal(line["*Amount"])
    assert len(journals) == 10 and set(journals.values()) == {Decimal(0)}
    by_code: dict[str, Decimal] = {}
    for line in lines:
        by_code[line["*AccountCode"]] = by_code.get(line["*AccountCode"], Decimal(0)) + Decimal(line["*Amount"])
    assert by_code == {"1210": 0, "1200": Decimal("39.77"), "4000": Decimal("-102.50"), "6100": Decimal("17.73"),
                       "4010": Decimal("20.00"), "4020": Decimal("25.00")}
    assert {line["*TaxRate"] for line in lines} == {"Tax Exempt"}
    assert {line["*Date"] for line in lines} <= {"26/10/2026", "29/10/2026"}


def test_the_quickbooks_ledger_follows_quickbooks_journal_entry_import(app_ctx, books, client):
    paid_out(client, books)

    result = export(app_ctx, "ledger-quickbooks", *OCTOBER)
    lines = rows(result)

    assert result.stdout.splitlines()[0] == "JournalNo,JournalDate,AccountName,Debits,Credits,Description"
    assert len(lines) == 20
    for number in {line["JournalNo"] for line in lines}:  # every entry balances
        entry = [line for line in lines if line["JournalNo"] == number]
        assert sum(Decimal(e["Debits"] or 0) for e in entry) == sum(Decimal(e["Credits"] or 0) for e in entry)
    assert {line["AccountName"] for line in lines} == {"Stripe balance", "Bank", "Donations", "Stripe fees",
                                                       "Refunds", "Chargebacks"}
    assert {line["JournalDate"] for line in lines} <= {"10/26/2026", "10/29/2026"}
