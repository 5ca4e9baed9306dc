"""`flask --app app export KIND`: one command shape for every export, clear errors, a progress bar for files."""
from __future__ import annotations

import csv
import io

import click._termui_impl
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from donations.extensions import db
from donations.reports.registry import kinds
from donations.staff.models import AuditEntry
from tests.functional.test_export import paid_donation, utc

KINDS = list(kinds())
RANGE = ["--from", "2026-03-01", "--to", "2026-03-31"]


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["export", *args])


def test_donations_and_supporters_are_registered():
    assert {"donations", "supporters"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_writes_its_header_to_stdout_and_is_audited(app_ctx, kind):
    result = run(app_ctx, kind, *RANGE)

    assert result.exit_code == 0, result.output
    assert next(csv.reader(io.StringIO(result.stdout))) == kinds()[kind].columns
    assert result.stderr == ""  # no progress bar in the way of a pipe
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).one()
    assert (entry.object_type, entry.actor_email) == (kind, "cli")
    assert entry.detail == {"start": "2026-03-01", "end": "2026-03-31", "format": "csv", "output": "stdout"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_writes_xlsx_with_its_header(app_ctx, kind, tmp_path):
    path = tmp_path / f"{kind}.xlsx"

    result = run(app_ctx, kind, *RANGE, "--format", "xlsx", "--output", str(path))

    assert result.exit_code == 0, result.output
    [sheet] = load_workbook(path).worksheets
    assert list(next(sheet.iter_rows(values_only=True))) == kinds()[kind].columns


def test_unknown_kind_is_a_usage_error(app_ctx):
    result = run(app_ctx, "refunds", *RANGE)

    assert result.exit_code == 2
    assert "'refunds' is not one of" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-02-30", "--to", "2026-03-31"], "'2026-02-30' is not a date in the form YYYY-MM-DD"),
    (["--from", "2026-03-31", "--to", "2026-03-01"], "the last day is before the first"),
    (["--to", "2026-03-31"], "Missing option '--from'"),
    (["--from", "2026-03-01"], "Missing option '--to'"),
    ([], "Missing option '--from'"),
    (["--fiscal-year", "2026", "--to", "2026-03-31"], "not both"),
    (["--fiscal-year", "1999"], "1999 is not in the range 2000<=x<=2100"),
    ([*RANGE, "--format", "xlsx"], "an XLSX file needs --output FILE"),
    ([*RANGE, "--format", "ods"], "'ods' is not one of 'csv', 'xlsx'"),
    ([*RANGE, "--bom", "--format", "xlsx", "--output", "x.xlsx"], "--bom is for CSV files only"),
])
def test_bad_arguments_are_clear_usage_errors_and_write_nothing(app_ctx, kind, args, message):
    result = run(app_ctx, kind, *args)

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.stdout.count("\n") <= 3 and "," not in result.stdout  # usage text at most, never a CSV
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).all() == []


def test_a_file_gets_a_progress_bar_on_stderr(app_ctx, client, tmp_path, monkeypatch):
    for day in (3, 4, 5):
        paid_donation(client, utc(2026, 3, day, 12))
    # click draws the bar only on a terminal; the test's stderr is a pipe, so it is made to look like one.
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)
    path = tmp_path / "d.csv"

    result = run(app_ctx, "donations", *RANGE, "--output", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "donations: 3 rows" in result.stderr
    assert "3/3" in result.stderr and "100%" in result.stderr
    assert "wrote 3 donations to" in result.stderr
    assert len(list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))) == 3


def test_a_file_off_a_terminal_gets_the_label_only(app_ctx, client, tmp_path):
    paid_donation(client, utc(2026, 3, 3, 12))

    result = run(app_ctx, "donations", *RANGE, "--output", str(tmp_path / "d.csv"))

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["donations: 1 rows", f"wrote 1 donations to {tmp_path / 'd.csv'}"]


def test_csv_to_stdout_has_no_progress_bar_even_on_a_terminal(app_ctx, client, monkeypatch):
    paid_donation(client, utc(2026, 3, 3, 12))
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)

    result = run(app_ctx, "donations", *RANGE)

    assert result.exit_code == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 2


def test_bom_on_stdout(app_ctx):
    result = run(app_ctx, "supporters", *RANGE, "--bom")

    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"\xef\xbb\xbfemail,")


def test_a_demo_payout_exports_by_its_id_and_a_malformed_id_is_refused(app_ctx):
    """The ids seed-demo gives its payouts (po_demo_eur_20261116) are accepted, as on /staff/payouts."""
    from donations import demo
    from donations.ledger.models import Payout

    demo.seed(supporters=8)
    db.session.commit()
    payout_id = db.session.scalars(select(Payout.stripe_payout_id).order_by(Payout.id)).first()

    result = run(app_ctx, "ledger", "--payout", payout_id)

    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    assert lines and {line["payout_id"] for line in lines} == {payout_id}

    refused = run(app_ctx, "ledger", "--payout", payout_id + "'; --")
    assert refused.exit_code == 2 and "is not a Stripe payout id" in refused.output
