"""Annual donation statements: what they show (refunds deducted, totals per currency, fiscal-year days in
UTC), the PDF, the email with the PDF attached, the daily job (once per supporter and year, one bad
supporter stopping nobody), and `flask statements send`."""
from __future__ import annotations

import email
import email.policy
from datetime import date

import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger.models import Supporter
from donations.mail.models import OutboxEmail
from donations.mail.sender import send_due
from donations.reports import statements
from donations.reports.jobs import send_annual_statements
from donations.reports.models import AnnualStatement
from donations.scheduler import build_scheduler
from tests.dates import utc_today
from tests.functional.statement_helpers import chargeback, gift, pdf_text, refund, utc
from tests.staff_helpers import in_app


def issued(app) -> list[dict]:
    """Every statement as (supporter email, fiscal year, number), oldest first."""
    with in_app(app):
        rows = db.session.execute(select(Supporter.email, AnnualStatement.fiscal_year, AnnualStatement.number)
                                  .join(Supporter, AnnualStatement.supporter_id == Supporter.id)
                                  .order_by(AnnualStatement.id))
        return [{"email": e, "year": y, "number": n} for e, y, n in rows]


def statement_emails(app) -> list[str]:
    with in_app(app):
        return list(db.session.scalars(select(OutboxEmail.dedupe_key)
                                       .where(OutboxEmail.template == "annual_statement").order_by(OutboxEmail.id)))


def content_of(app, email_address: str, year: int) -> dict:
    with in_app(app):
        return db.session.scalars(select(AnnualStatement.content).join(Supporter).where(
            Supporter.email == email_address, AnnualStatement.fiscal_year == year)).one()


def pdf_of(app, email_address: str, year: int) -> str:
    with in_app(app), app.test_request_context():
        return pdf_text(statements.render_statement_pdf(content_of(app, email_address, year)))


def issue(app, year: int) -> dict:
    with in_app(app):
        return statements.issue_statements(year)


@pytest.fixture
def publisher(app, monkeypatch):
    for key, value in {"PUBLISHER_LEGAL_NAME": "Riverside Media gGmbH", "PUBLISHER_ADDRESS": "Am Fluss 1\n12345 Weiler",
                       "PUBLISHER_TAX_ID": "DE123456789", "PUBLISHER_REGISTRATION": "HRB 4242"}.items():
        monkeypatch.setitem(app.config, key, value)


# -- what a statement shows -------------------------------------------------------------------------------

def test_refunds_are_deducted_and_each_currency_is_totalled_on_its_own(app, client, publisher):
    refunded = gift(client, utc(2026, 2, 3, 10, 0), 2500, "EUR")
    gift(client, utc(2026, 6, 1, 9, 30), 5000, "EUR")
    gift(client, utc(2026, 7, 4, 12, 0), 3000, "USD")
    refund(client, refunded, 1000)

    assert issue(app, 2026)["issued"] == 1

    content = content_of(app, "reader@example.com", 2026)
    assert [(line["date"], line["currency"], line["amount"], line["refunded"], line["net"]) for line in content["lines"]] == [
        ("2026-02-03", "EUR", 2500, 1000, 1500), ("2026-06-01", "EUR", 5000, 0, 5000),
        ("2026-07-04", "USD", 3000, 0, 3000)]
    assert [(t["currency"], t["amount"], t["refunded"], t["net"]) for t in content["totals"]] == [
        ("EUR", 7500, 1000, 6500), ("USD", 3000, 0, 3000)]

    text = pdf_of(app, "reader@example.com", 2026)
    assert "Annual donation statement 2026" in text
    assert content["number"] == "S2026-000001" and "S2026-000001" in text
    for receipt in (line["receipt_number"] for line in content["lines"]):
        assert receipt and receipt in text
    assert "3 February 2026" in text and "1 January 2026 – 31 December 2026" in text
    assert "€25.00" in text and "−€10.00" in text and "€15.00" in text  # the refunded gift, line by line
    assert "Total in EUR (2 gifts)" in text and "€75.00" in text and "€65.00" in text
    assert "Total in USD (1 gift)" in text and "$30.00" in text
    assert "95.00" not in text and "105.00" not in text  # no sum across currencies, in any currency
    for detail in ("Riverside Media gGmbH", "Am Fluss 1", "12345 Weiler", "Tax ID: DE123456789",
                   "Registration: HRB 4242", "Ada Reader", "reader@example.com"):
        assert detail in text
    assert "COPY" not in text


def test_a_chargeback_lost_counts_as_money_returned(app, client):
    kept = gift(client, utc(2026, 3, 1), 2000, "EUR")
    lost = gift(client, utc(2026, 4, 1), 3000, "EUR")
    chargeback(client, lost, "needs_response")
    chargeback(client, lost, "lost")

    issue(app, 2026)

    lines = content_of(app, "reader@example.com", 2026)["lines"]
    assert [(line["amount"], line["refunded"], line["net"]) for line in lines] == [(2000, 0, 2000), (3000, 3000, 0)]
    assert kept != lost


def test_a_supporter_with_nothing_net_in_the_year_gets_no_statement(app, client):
    refunded = gift(client, utc(2026, 5, 5), 2500, "EUR", email="refunded@example.com")
    refund(client, refunded, 2500)
    gift(client, utc(2025, 12, 31, 23, 59, 59), 2500, "EUR", email="lastyear@example.com")
    gift(client, utc(2026, 5, 5), 1000, "GBP", email="giver@example.com")

    counts = issue(app, 2026)

    assert counts["issued"] == 1 and counts["failed"] == 0
    assert [row["email"] for row in issued(app)] == ["giver@example.com"]
    assert len(statement_emails(app)) == 1


def test_fiscal_year_days_are_utc_days_from_the_configured_start_month(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "FISCAL_YEAR_START_MONTH", 4)
    gift(client, utc(2026, 3, 31, 23, 59, 59), 1000, email="r@example.com")  # last second of FY 2025
    first = gift(client, utc(2026, 4, 1, 0, 0, 0), 2000, email="r@example.com")  # first second of FY 2026
    last = gift(client, utc(2027, 3, 31, 23, 59, 59), 3000, email="r@example.com")  # last second of FY 2026
    gift(client, utc(2027, 4, 1, 0, 0, 0), 4000, email="r@example.com")  # first second of FY 2027

    issue(app, 2026)

    content = content_of(app, "r@example.com", 2026)
    assert [(line["date"], line["amount"]) for line in content["lines"]] == [("2026-04-01", 2000), ("2027-03-31", 3000)]
    assert content["totals"][0]["net"] == 5000
    text = pdf_of(app, "r@example.com", 2026)
    assert "Annual donation statement 2026/27" in text
    assert "1 April 2026 – 31 March 2027" in text and "€50.00" in text
    assert first != last


def test_statement_numbers_count_up_without_gaps_per_fiscal_year(app, client):
    for n in range(3):
        gift(client, utc(2026, 1, 10 + n), email=f"r{n}@example.com")
    gift(client, utc(2025, 1, 10), email="r0@example.com")

    issue(app, 2026)
    issue(app, 2025)

    assert [(row["email"], row["number"]) for row in issued(app)] == [
        ("r0@example.com", "S2026-000001"), ("r1@example.com", "S2026-000002"), ("r2@example.com", "S2026-000003"),
        ("r0@example.com", "S2025-000001")]


def test_the_snapshot_keeps_the_statement_as_issued_after_later_refunds_and_settings(app, client, monkeypatch):
    donation = gift(client, utc(2026, 2, 3), 2500, "EUR")
    issue(app, 2026)
    before = pdf_of(app, "reader@example.com", 2026)

    refund(client, donation, 2500)
    monkeypatch.setitem(app.config, "PUBLISHER_LEGAL_NAME", "Someone Else Ltd")

    assert pdf_of(app, "reader@example.com", 2026) == before
    assert "€25.00" in before and "Someone Else" not in before


# -- the email -------------------------------------------------------------------------------------------

def test_the_statement_email_is_sent_over_smtp_with_the_pdf_attached(app, client, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://{host}:{port}")
    gift(client, utc(2026, 2, 3), 2500, "EUR", email="ada@example.com")
    gift(client, utc(2026, 3, 3), 1000, "USD", email="ada@example.com")
    with in_app(app):
        db.session.execute(OutboxEmail.__table__.delete())  # the receipts; this test is about the statement
        db.session.commit()
    issue(app, 2026)

    with in_app(app):
        assert send_due() == {"sent": 1, "retry": 0, "failed": 0}

    assert len(received) == 1 and received[0].rcpt_tos == ["ada@example.com"]
    message = email.message_from_bytes(received[0].content, policy=email.policy.default)
    assert message["Subject"] == "Your donation statement 2026 from The Riverside Chronicle"
    body = message.get_body(("plain",)).get_content()
    assert "S2026-000001" in body and "€25.00" in body and "$10.00" in body and "/account/" in body
    assert "S2026-000001" in message.get_body(("html",)).get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "statement-S2026-000001.pdf"
    text = pdf_text(attachment.get_content())
    assert "S2026-000001" in text and "€25.00" in text and "$10.00" in text and "COPY" not in text


# -- the job ----------------------------------------------------------------------------------------------

def test_the_job_issues_last_years_statements_from_the_configured_day_on_once(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "ANNUAL_STATEMENTS_DATE", "02-15")
    gift(client, utc(2026, 5, 1), email="a@example.com")
    gift(client, utc(2026, 6, 1), email="b@example.com")
    gift(client, utc(2027, 1, 5), email="a@example.com")  # this year's: not yet

    with in_app(app):
        assert send_annual_statements(date(2027, 2, 14)) == {}
    assert issued(app) == []

    with in_app(app):
        first = send_annual_statements(date(2027, 2, 15))
        second = send_annual_statements(date(2027, 2, 16))

    assert first["issued"] == 2 and second == {"issued": 0, "already": 0, "nothing": 0, "failed": 0}
    assert [(row["email"], row["year"]) for row in issued(app)] == [("a@example.com", 2026), ("b@example.com", 2026)]
    assert len(statement_emails(app)) == 2


def test_a_gift_booked_late_gets_its_statement_on_the_next_daily_run(app, client):
    gift(client, utc(2026, 5, 1), email="a@example.com")
    with in_app(app):
        send_annual_statements(date(2027, 2, 1))
    gift(client, utc(2026, 12, 31, 23, 0), email="late@example.com")  # a webhook that arrived late

    with in_app(app):
        counts = send_annual_statements(date(2027, 2, 2))

    assert counts["issued"] == 1
    assert [row["email"] for row in issued(app)] == ["a@example.com", "late@example.com"]


def test_one_supporter_failing_stops_nobody_else_and_leaves_no_gap(app, client, monkeypatch, caplog):
    for name in ("a", "b", "c"):
        gift(client, utc(2026, 5, 1), email=f"{name}@example.com")
    real = statements.statement_content

    def broken_for_b(supporter, fiscal_year):
        if supporter.email == "b@example.com":
            raise RuntimeError("bad data for b")
        return real(supporter, fiscal_year)

    monkeypatch.setattr(statements, "statement_content", broken_for_b)
    counts = issue(app, 2026)

    assert counts == {"issued": 2, "already": 0, "nothing": 0, "failed": 1}
    assert [(row["email"], row["number"]) for row in issued(app)] == [
        ("a@example.com", "S2026-000001"), ("c@example.com", "S2026-000002")]
    assert "bad data for b" in caplog.text
    assert len(statement_emails(app)) == 2

    monkeypatch.setattr(statements, "statement_content", real)
    assert issue(app, 2026)["issued"] == 1  # the next run catches up
    assert issued(app)[-1] == {"email": "b@example.com", "year": 2026, "number": "S2026-000003"}


def test_the_job_is_registered_to_run_daily(app):
    job = {job.id: job for job in build_scheduler(app).get_jobs()}["reports.annual_statements"]
    assert str(job.trigger) == "cron[hour='5', minute='30']"
    assert job.args[1] is send_annual_statements


# -- the command line -------------------------------------------------------------------------------------

def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["statements", "send", *args])


def test_cli_issues_the_years_statements_once(app, client):
    gift(client, utc(2025, 5, 1), email="a@example.com")

    first, second = cli(app, "--fiscal-year", "2025"), cli(app, "--fiscal-year", "2025")

    assert first.exit_code == 0, first.output
    assert "issued 1, already issued 0, failed 0" in first.output
    assert "issued 0" in second.output
    assert len(issued(app)) == 1 and len(statement_emails(app)) == 1


@pytest.mark.parametrize("args,message", [
    ([], "Missing option '--fiscal-year'"),
    (["--fiscal-year", "last"], "'last' is not a valid integer"),
    (["--fiscal-year", "1999"], "1999 is not a fiscal year we can issue statements for"),
    (["--fiscal-year", "2999"], "2999 is not a fiscal year we can issue statements for"),
    (["--fiscal-year", "this year"], "has not ended yet"),  # read in the test: not when the tests are collected
])
def test_cli_bad_fiscal_year_is_a_usage_error_and_issues_nothing(app, client, args, message):
    this_year = utc_today().year
    args = [str(this_year) if arg == "this year" else arg for arg in args]
    gift(client, utc(this_year, 1, 1), email="a@example.com")

    result = cli(app, *args)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    with in_app(app):
        assert db.session.scalar(select(func.count()).select_from(AnnualStatement)) == 0


def test_a_supporter_whose_only_gift_was_charged_back_is_not_looked_at_again(app, client):
    lost = gift(client, utc(2026, 4, 1), 3000, "EUR", email="chargeback@example.com")
    chargeback(client, lost, "needs_response")
    chargeback(client, lost, "lost")

    with in_app(app):
        assert statements.supporters_due(2026) == []
        assert statements.issue_statements(2026) == {"issued": 0, "already": 0, "nothing": 0, "failed": 0}
