"""`flask export supporters`: only supporters who agreed to hear from us, one row per currency they gave in,
and text that could become a spreadsheet formula defused the same way in CSV and XLSX."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from donations.db import now_utc
from donations.extensions import db
from donations.ledger.models import Supporter
from tests.functional.test_account import account
from tests.functional.test_export import paid_donation, utc
from tests.functional.test_mailing_consent import FORM_SOURCE, give
from tests.functional.helpers import hidden_value
from tests.dates import recent_days

HEADER = "email,name,consented_at,consent_source,currency,gifts,first_gift_at,last_gift_at,total,active_recurring"


def export(app, *args: str):
    return app.test_cli_runner().invoke(args=["export", "supporters", *args])


def recent_range() -> list[str]:
    """--from yesterday --to today (UTC), read when called: it holds what the test made a moment ago."""
    start, end = recent_days()
    return ["--from", start, "--to", end]


def csv_rows(result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def consent(email: str, at: datetime | None = None, source: str = "test: agreed on paper") -> Supporter:
    person = db.session.query(Supporter).filter_by(email=email).one()
    person.mailing_consent_at, person.mailing_consent_source = at or now_utc(), source
    db.session.commit()
    return person


def test_only_supporters_who_consented_are_exported(app_ctx, client):
    give(client, consent=True, email="yes@example.com")
    give(client, consent=False, email="no@example.com")
    give(client, consent=True, email="withdrew@example.com")
    path = account("withdrew@example.com")
    page = client.get(path).get_data(as_text=True)
    assert client.post(f"{path}/mailing-consent/withdraw",
                       data={"csrf_token": hidden_value(page, "csrf_token")}).status_code == 303

    start, end = recent_days()  # read after the gifts: they are in it even if midnight passed since
    result = export(app_ctx, "--from", start, "--to", end)

    assert result.stdout.splitlines()[0] == HEADER
    [row] = csv_rows(result)
    person = db.session.query(Supporter).filter_by(email="yes@example.com").one()
    assert row == {
        "email": "yes@example.com", "name": "Ada Reader",
        "consented_at": person.mailing_consent_at.isoformat().replace("+00:00", "Z"),
        "consent_source": FORM_SOURCE, "currency": "EUR", "gifts": "1",
        "first_gift_at": row["first_gift_at"], "last_gift_at": row["first_gift_at"], "total": "10.00",
        "active_recurring": "no",
    }
    assert start <= row["first_gift_at"][:10] <= end


def test_a_running_monthly_gift_shows_as_active_recurring(app_ctx, client):
    give(client, consent=True, frequency="monthly")

    [row] = csv_rows(export(app_ctx, *recent_range()))

    assert row["active_recurring"] == "yes"


def test_each_currency_is_its_own_row_and_never_summed(app_ctx, client, tmp_path):
    paid_donation(client, utc(2026, 3, 1, 10), amount=2500, currency="EUR", email="two@example.com")
    paid_donation(client, utc(2026, 3, 5, 10), amount=1000, currency="EUR", email="two@example.com")
    paid_donation(client, utc(2026, 3, 9, 10), amount=3000, currency="USD", email="two@example.com")
    consent("two@example.com", utc(2026, 3, 2))

    rows = csv_rows(export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31"))

    assert [(r["currency"], r["gifts"], r["total"], r["first_gift_at"], r["last_gift_at"]) for r in rows] == [
        ("EUR", "2", "35.00", "2026-03-01T10:00:00Z", "2026-03-05T10:00:00Z"),
        ("USD", "1", "30.00", "2026-03-09T10:00:00Z", "2026-03-09T10:00:00Z"),
    ]
    path = tmp_path / "s.xlsx"
    assert export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31", "--format", "xlsx",
                  "--output", str(path)).exit_code == 0
    book = load_workbook(path)
    assert book.sheetnames == ["EUR", "USD"]
    eur = dict(zip(*list(book["EUR"].iter_rows(values_only=True))[:2]))
    assert eur["total"] == Decimal("35") and eur["gifts"] == 2
    assert eur["consented_at"] == datetime(2026, 3, 2)


def test_the_range_is_the_day_consent_was_given(app_ctx, client):
    paid_donation(client, utc(2026, 3, 10), email="early@example.com")
    paid_donation(client, utc(2026, 3, 10), email="late@example.com")
    consent("early@example.com", utc(2026, 2, 28, 23, 59, 59))
    consent("late@example.com", utc(2026, 3, 1))

    rows = csv_rows(export(app_ctx, "--from", "2026-03-01", "--to", "2026-03-31"))

    assert [r["email"] for r in rows] == ["late@example.com"]


def test_a_consenting_supporter_without_a_paid_gift_has_one_row_without_currency(app_ctx):
    db.session.add(Supporter(email="nogift@example.com", mailing_consent_at=now_utc(), mailing_consent_source="x"))
    db.session.commit()

    [row] = csv_rows(export(app_ctx, *recent_range()))

    assert (row["email"], row["currency"], row["gifts"], row["total"]) == ("nogift@example.com", "", "0", "")


PAYLOADS = [
    '=HYPERLINK("http://x")',
    "+1+1",
    "-2+3",
    "@SUM(1)",
    "\tTabbed",
    "\rCarriage",
    'Ada "the" Reader',
    "Line one\nline two",
    '=1+2 "quoted"\nand on',
    "Plain Name",
]


def expected(text: str) -> str:
    """Defused (a ' before a formula's first character), and a CR read back as the LF that XLSX keeps."""
    return ("'" + text if text[0] in "=+-@\t\r" else text).replace("\r", "\n")


def test_formula_payloads_read_back_defused_and_the_same_from_csv_and_xlsx(app_ctx, tmp_path):
    # Names reach the ledger from Stripe's customer details too, unfiltered; so any text can arrive here.
    base = datetime(2026, 5, 1, tzinfo=timezone.utc)
    for number, payload in enumerate(PAYLOADS):
        db.session.add(Supporter(email=f"p{number}@example.com", name=payload, mailing_consent_source=payload,
                                 mailing_consent_at=base + timedelta(minutes=number)))
    db.session.commit()
    csv_path, xlsx_path = tmp_path / "s.csv", tmp_path / "s.xlsx"

    for fmt, path in (("csv", csv_path), ("xlsx", xlsx_path)):
        result = export(app_ctx, "--from", "2026-05-01", "--to", "2026-05-01", "--format", fmt, "--output", str(path))
        assert result.exit_code == 0, result.output

    with open(csv_path, newline="", encoding="utf-8") as handle:
        from_csv = list(csv.reader(handle))
    sheet = load_workbook(xlsx_path)["Supporters"]
    from_xlsx = [["" if value is None else value for value in row] for row in sheet.iter_rows(values_only=True)]
    assert ",".join(from_csv[0]) == ",".join(from_xlsx[0]) == HEADER
    names = [(row[1], row[3]) for row in from_csv[1:]]
    assert names == [(expected(p), expected(p)) for p in PAYLOADS]
    assert [(row[1], row[3]) for row in from_xlsx[1:]] == names
    for row in sheet.iter_rows(min_row=2):
        assert row[1].data_type == "s"  # text, never a formula
    assert csv_path.read_bytes().count(b"\r\n") >= len(PAYLOADS) + 1  # RFC 4180 line ends


def test_the_supporters_export_has_no_payout_filter(app_ctx):
    result = export(app_ctx, "--payout", "po_1AbC")

    assert result.exit_code == 2
    assert "the supporters export has no payout filter" in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_fiscal_year_works_for_supporters(app_ctx, client, monkeypatch, tmp_path, fmt):
    monkeypatch.setitem(app_ctx.config, "FISCAL_YEAR_START_MONTH", 4)
    paid_donation(client, utc(2026, 3, 10), email="fy@example.com")
    consent("fy@example.com", utc(2027, 3, 31, 23))
    path = tmp_path / f"s.{fmt}"

    result = export(app_ctx, "--fiscal-year", "2026", "--format", fmt, "--output", str(path))

    assert result.exit_code == 0, result.output
    assert "wrote 1 supporters" in result.stderr
