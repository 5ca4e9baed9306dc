"""`flask export donations --format xlsx`: read back with openpyxl, numbers as numbers, dates as dates."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from openpyxl import load_workbook

from tests.functional.test_export import HEADER, export, paid_donation, utc


def test_xlsx_has_one_sheet_per_currency_with_typed_cells(app_ctx, client, monkeypatch, tmp_path):
    monkeypatch.setitem(app_ctx.config, "CURRENCIES", ["EUR", "JPY"])
    eur = paid_donation(client, utc(2026, 3, 10, 12, 30, 0), amount=2550)
    paid_donation(client, utc(2026, 3, 11, 9, 0, 0), amount=2500, currency="JPY", email="yen@example.com",
                  name='=HYPERLINK("https://evil.example","x")')
    path = tmp_path / "q1.xlsx"

    result = export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31", "--format", "xlsx", "--output", str(path))

    assert result.exit_code == 0, result.output
    book = load_workbook(path)
    assert book.sheetnames == ["EUR", "JPY"]
    euros, yen = (list(book[name].iter_rows(values_only=True)) for name in ("EUR", "JPY"))
    assert ",".join(euros[0]) == HEADER
    header = euros[0]
    row = dict(zip(header, euros[1]))
    assert row["donation_id"] == eur.id
    assert row["paid_at"] == datetime(2026, 3, 10, 12, 30, 0)
    assert Decimal(str(row["amount"])) == Decimal("25.50") and row["currency"] == "EUR"
    assert row["fee"] is None  # not known yet
    assert book["EUR"].cell(row=2, column=5).number_format == "#,##0.00"
    yen_row = dict(zip(yen[0], yen[1]))
    assert yen_row["amount"] == 2500 and book["JPY"].cell(row=2, column=5).number_format == "#,##0"
    # A name that looks like a formula stays text, defused as in the CSV.
    assert yen_row["supporter_name"].startswith("'=HYPERLINK")
    assert book["JPY"].cell(row=2, column=4).data_type == "s"


def test_xlsx_needs_an_output_file(app_ctx):
    result = export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31", "--format", "xlsx")

    assert result.exit_code == 2
    assert "--output" in result.output and "Traceback" not in result.output
