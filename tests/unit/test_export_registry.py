"""The export registry's writers and parameter rules, with kinds made up here (no database needed)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from donations.money import Money
from donations.reports.registry import (
    ExportKind,
    ExportParamError,
    ExportParams,
    csv_chunks,
    make_params,
    write_csv,
    write_xlsx,
)


def kind_of(rows: list[list], by_payout: bool = False) -> ExportKind:
    return ExportKind(name="made_up", title="Made up", description="For tests.", columns=["n", "amount", "currency",
                      "at", "day", "flag", "text"], count=lambda params: len(rows), rows=lambda params: iter(rows),
                      by_payout=by_payout)


ROWS = [
    [1, Money(-1250, "EUR"), "EUR", datetime(2026, 3, 1, 12, tzinfo=timezone.utc), date(2026, 3, 1), True, "=1+1"],
    [2, Money(500, "JPY"), "JPY", None, None, False, "plain"],
    [3, Decimal("1.0845"), "EUR", None, None, None, None],
]
PARAMS = ExportParams(date(2026, 3, 1), date(2026, 3, 31))


def test_progress_is_called_every_n_rows_and_at_the_end():
    calls: list[int] = []

    write_csv(kind_of(ROWS * 2), io.StringIO(), PARAMS, calls.append, every=4)

    assert calls == [4, 6]


def test_csv_cells_by_type_and_numbers_are_not_defused():
    out = io.StringIO(newline="")

    assert write_csv(kind_of(ROWS), out, PARAMS) == 3

    assert out.getvalue().startswith("n,amount,currency,at,day,flag,text\r\n")
    assert list(csv.reader(io.StringIO(out.getvalue())))[1:] == [
        ["1", "-12.50", "EUR", "2026-03-01T12:00:00Z", "2026-03-01", "yes", "'=1+1"],
        ["2", "500", "JPY", "", "", "no", "plain"],
        ["3", "1.0845", "EUR", "", "", "", ""],
    ]


def test_streamed_csv_matches_the_written_one_and_can_start_with_a_bom():
    out = io.StringIO(newline="")
    write_csv(kind_of(ROWS), out, PARAMS)

    assert "".join(csv_chunks(kind_of(ROWS), PARAMS, bom=True, size=10)) == "\ufeff" + out.getvalue()


def test_xlsx_splits_by_currency_with_typed_cells(tmp_path):
    path = tmp_path / "x.xlsx"

    write_xlsx(kind_of(ROWS), str(path), PARAMS)

    book = load_workbook(path)
    assert book.sheetnames == ["EUR", "JPY"]
    eur = list(book["EUR"].iter_rows(values_only=True))
    assert eur[1] == (1, Decimal("-12.5"), "EUR", datetime(2026, 3, 1, 12), datetime(2026, 3, 1), "yes", "'=1+1")
    assert eur[2][1] == 1.0845  # a spreadsheet number is a double: the exact rate is in the CSV
    assert book["EUR"].cell(row=2, column=2).number_format == "#,##0.00"
    assert book["JPY"].cell(row=2, column=2).number_format == "#,##0"


def test_payout_kinds_take_a_payout_instead_of_dates():
    payouts = kind_of([], by_payout=True)

    assert make_params(payouts, payout_id="po_1Qx") == ExportParams(payout_id="po_1Qx")
    with pytest.raises(ExportParamError, match="not a Stripe payout id") as bad:
        make_params(payouts, payout_id="tr_1Qx")
    assert bad.value.field == "payout"
    with pytest.raises(ExportParamError, match="not both"):
        make_params(payouts, payout_id="po_1Qx", start=date(2026, 1, 1), end=date(2026, 1, 2))


def test_payout_ids_the_app_makes_are_accepted_and_nothing_else():
    payouts = kind_of([], by_payout=True)

    for good in ("po_demo_eur_20261116", "po_bench12", "po_1OaBcD", " po_1Qx\n"):
        assert make_params(payouts, payout_id=good) == ExportParams(payout_id=good.strip())
    for bad in ("po_1 2", "po_1\x00", "po_1'", 'po_1"', "po_", "po_1-2", "po_1\npo_2", "po_" + "a" * 251,
                "po_é", "PO_1"):
        with pytest.raises(ExportParamError, match="not a Stripe payout id"):
            make_params(payouts, payout_id=bad)


def test_period_rules():
    plain = kind_of([])

    assert make_params(plain, fiscal_year=2026, fiscal_start_month=4) == ExportParams(date(2026, 4, 1),
                                                                                      date(2027, 3, 31))
    with pytest.raises(ExportParamError) as missing:
        make_params(plain, end=date(2026, 1, 1))
    assert (missing.value.field, missing.value.missing) == ("from", True)
    with pytest.raises(ExportParamError, match="before the first"):
        make_params(plain, start=date(2026, 1, 2), end=date(2026, 1, 1))
    with pytest.raises(ExportParamError, match="no payout filter"):
        make_params(plain, payout_id="po_1Qx")


def test_params_survive_json():
    for params in (PARAMS, ExportParams(payout_id="po_1")):
        assert ExportParams.from_json(params.to_json()) == params
