"""Annual statements on the supporter's account page (downloaded through the signed manage link) and on
the staff supporter page (issued for a chosen fiscal year, or sent again as a copy marked COPY)."""
from __future__ import annotations

import email
import email.policy
import html as html_lib
import re

import pytest
from sqlalchemy import select

from donations.accounts.tokens import manage_url
from donations.extensions import db
from donations.ledger.models import Donation
from donations.mail.models import OutboxEmail
from donations.mail.sender import send_due
from donations.reports import statements
from donations.reports.models import AnnualStatement, StatementSequence
from donations.staff.models import AuditEntry, Role
from tests.dates import days_around, utc_today
from tests.functional.statement_helpers import gift, pdf_text, refund, utc
from tests.staff_helpers import audit_rows, count, in_app, is_sign_in_redirect, login_csrf, signed_in

PUBLIC = "http://donations.test"


def issue_2025(app) -> None:
    with in_app(app):
        statements.issue_statements(2025)


def supporter_of(app, donation_id: int) -> tuple[int, str]:
    with in_app(app):
        donation = db.session.get(Donation, donation_id)
        return donation.supporter_id, donation.supporter.email


def account_path(app, donation_id: int) -> str:
    supporter_id, address = supporter_of(app, donation_id)
    with app.test_request_context():
        return manage_url(supporter_id, address).removeprefix(PUBLIC)


def statement_id(app, supporter_id: int, year: int = 2025) -> int:
    with in_app(app):
        return db.session.scalars(select(AnnualStatement.id).where(AnnualStatement.supporter_id == supporter_id,
                                                                   AnnualStatement.fiscal_year == year)).one()


def flashed(html: str) -> list[str]:
    return [html_lib.unescape(text) for text in re.findall(r'<p class="(?:alert|notice)" role="(?:alert|status)"[^>]*>(.*?)</p>',
                                                            html, re.S)]


# -- the supporter's account page ---------------------------------------------------------------------------

@pytest.fixture
def two_supporters(client):
    """Ada and Bob each gave in 2025 and have their statements."""
    ada = gift(client, utc(2025, 3, 1), 2500, "EUR", email="ada@example.com")
    bob = gift(client, utc(2025, 4, 1), 4000, "GBP", email="bob@example.com", name="Bob")
    issue_2025(client.application)
    return ada, bob


def test_account_page_lists_the_statements_and_downloads_the_pdf(client, two_supporters):
    app = client.application
    ada, _ = two_supporters
    path = account_path(app, ada)
    sid = statement_id(app, supporter_of(app, ada)[0])

    page = client.get(path).get_data(as_text=True)

    assert "Annual statements" in page and "S2025-000001 (PDF)" in page
    link = f"{path}/statements/{sid}.pdf"
    assert f'href="{link}"' in page
    response = client.get(link)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="statement-S2025-000001.pdf"'
    assert "no-store" in response.headers["Cache-Control"]
    text = pdf_text(response.data)
    assert "S2025-000001" in text and "€25.00" in text and "ada@example.com" in text and "COPY" not in text


def test_a_supporter_without_statements_sees_no_statement_section(client):
    donation = gift(client, utc(2026, 3, 1), email="new@example.com")
    assert "Annual statements" not in client.get(account_path(client.application, donation)).get_data(as_text=True)


def test_another_supporters_statement_is_not_found(client, two_supporters):
    app = client.application
    ada, bob = two_supporters
    bobs_statement = statement_id(app, supporter_of(app, bob)[0])

    response = client.get(f"{account_path(app, ada)}/statements/{bobs_statement}.pdf")

    assert response.status_code == 404
    assert not response.data.startswith(b"%PDF")


@pytest.mark.parametrize("mangle", [lambda token: token[:-4] + "AAAA", lambda token: "not-a-token"],
                         ids=["tampered", "garbage"])
def test_a_bad_token_gets_no_statement(client, two_supporters, mangle):
    app = client.application
    ada, _ = two_supporters
    token = account_path(app, ada).removeprefix("/account/")
    sid = statement_id(app, supporter_of(app, ada)[0])

    response = client.get(f"/account/{mangle(token)}/statements/{sid}.pdf")

    assert response.status_code == 400
    assert "This link is not valid." in response.get_data(as_text=True)


def test_an_expired_link_gets_no_statement(client, two_supporters, monkeypatch):
    app = client.application
    ada, _ = two_supporters
    path = account_path(app, ada)
    sid = statement_id(app, supporter_of(app, ada)[0])
    monkeypatch.setitem(app.config, "MANAGE_LINK_MAX_AGE_DAYS", -1)

    assert client.get(f"{path}/statements/{sid}.pdf").status_code == 410


# -- staff: issue and re-issue ------------------------------------------------------------------------------

def staff_issue(staff, supporter_id: int, year: str, **kwargs):
    return staff.post(f"/staff/supporters/{supporter_id}/statements", {"fiscal_year": year}, **kwargs)


def outbox_for(app, statement: int) -> list[OutboxEmail]:
    with in_app(app):
        rows = list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.dedupe_key.like(
            f"annual_statement:{statement}%")).order_by(OutboxEmail.id)))
        db.session.expunge_all()
        return rows


@pytest.mark.parametrize("role", [Role.ADMIN, Role.STAFF, Role.ACCOUNTANT])
def test_staff_reissue_sends_a_copy_marked_copy_and_otherwise_identical(client, smtp_server, monkeypatch, role):
    app = client.application
    donation = gift(client, utc(2025, 6, 1), 2500, "EUR", email="ada@example.com")
    refund(client, donation, 500)
    issue_2025(app)
    supporter_id, _ = supporter_of(app, donation)
    sid = statement_id(app, supporter_id)
    staff = signed_in(client, role)

    page = staff.get(f"/staff/supporters/{supporter_id}").get_data(as_text=True)
    assert "S2025-000001" in page and 'name="fiscal_year"' in page
    with days_around() as days:
        response = staff_issue(staff, supporter_id, "2025")

    assert response.status_code == 303
    page = staff.get(response.headers["Location"]).get_data(as_text=True)
    assert "Statement S2025-000001 is on its way to ada@example.com again, marked as a copy." in flashed(page)
    keys = [row.dedupe_key for row in outbox_for(app, sid)]
    assert keys == [f"annual_statement:{sid}", f"annual_statement:{sid}:reissue:1"]
    with in_app(app):
        statement = db.session.get(AnnualStatement, sid)
        assert statement.reissued_count == 1 and statement.reissued_at.date() in days
        # The documents print the stored days (the original's and the copy's may differ across midnight).
        issued_on, reissued_on = statement.issued_at.date(), statement.reissued_at.date()
    [entry] = audit_rows(app, AuditEntry.action == "statement.reissue")
    assert (entry["actor_id"], entry["object_id"], entry["detail"]["fiscal_year"]) == (staff.id, str(sid), 2025)

    host, port, received = smtp_server
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://{host}:{port}")
    with in_app(app):
        send_due()
    sent = {}
    for envelope in received:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        for part in message.iter_attachments():
            sent[message["Subject"]] = (part.get_filename(), pdf_text(part.get_content()))
    original = sent["Your donation statement 2025 from The Riverside Chronicle"]
    copy = sent["Copy of your donation statement 2025 from The Riverside Chronicle"]
    assert original[0] == "statement-S2025-000001.pdf" and copy[0] == "statement-S2025-000001-copy-1.pdf"
    assert "COPY" not in original[1]
    long_day = lambda day: f"{day.day} {day:%B %Y}"  # noqa: E731
    assert f"COPY — re-issued on {long_day(reissued_on)}" in copy[1]
    # Everything else is the original: take out the notice, the footer's mark and the watermark, and compare.
    notice = f"COPY — re-issued on {long_day(reissued_on)}. The original was issued on {long_day(issued_on)}."
    squeeze = lambda text: re.sub(r"\s+", "", text)  # noqa: E731  (line breaks move when the notice is added)
    assert squeeze(copy[1]).replace(squeeze(notice), "").replace("·COPY", "").replace("COPY", "") == squeeze(original[1])
    assert "−€5.00" in copy[1] and "€20.00" in copy[1]


def test_staff_issue_a_missing_statement_for_a_chosen_year(client):
    app = client.application
    donation = gift(client, utc(2024, 12, 31, 23, 59, 59), 1500, "USD", email="late@example.com")
    supporter_id, _ = supporter_of(app, donation)
    staff = signed_in(client, Role.STAFF)

    response = staff_issue(staff, supporter_id, "2024")

    page = staff.get(response.headers["Location"]).get_data(as_text=True)
    assert "Statement S2024-000001 is issued and on its way to late@example.com." in flashed(page)
    sid = statement_id(app, supporter_id, 2024)
    assert [row.dedupe_key for row in outbox_for(app, sid)] == [f"annual_statement:{sid}"]
    assert [a["action"] for a in audit_rows(app, AuditEntry.object_type == "annual_statement")] == ["statement.issue"]


@pytest.mark.parametrize("year,message", [
    ("", "Enter the fiscal year as four digits, such as 2026"),
    ("twenty", "Enter the fiscal year as four digits, such as 2026"),
    ("２０２５", "Enter the fiscal year as four digits, such as 2026"),
    ("1999", "1999 is not a fiscal year we can issue statements for"),
    ("this year", "has not ended yet"),  # read in the test: the year may turn between collecting and running
    ("2023", "Nothing was given (net of refunds) in fiscal year 2023: no statement."),
])
def test_staff_bad_year_gets_a_clear_message_and_nothing_is_written(client, year, message):
    app = client.application
    if year == "this year":
        year = str(utc_today().year)
    donation = gift(client, utc(2025, 6, 1), email="ada@example.com")
    supporter_id, _ = supporter_of(app, donation)
    staff = signed_in(client, Role.ADMIN)

    response = staff_issue(staff, supporter_id, year)

    assert response.status_code == 303
    assert any(message in text for text in flashed(staff.get(response.headers["Location"]).get_data(as_text=True)))
    assert count(app, AnnualStatement) == 0 and count(app, StatementSequence) == 0
    assert count(app, OutboxEmail, OutboxEmail.template == "annual_statement") == 0
    assert audit_rows(app, AuditEntry.object_type == "annual_statement") == []


def test_staff_reissue_needs_the_csrf_token(client):
    app = client.application
    donation = gift(client, utc(2025, 6, 1))
    issue_2025(app)
    supporter_id, _ = supporter_of(app, donation)
    staff = signed_in(client, Role.ADMIN)

    response = staff_issue(staff, supporter_id, "2025", csrf=False)

    assert response.status_code == 400
    with in_app(app):
        assert db.session.get(AnnualStatement, statement_id(app, supporter_id)).reissued_count == 0
    assert count(app, OutboxEmail, OutboxEmail.template == "annual_statement") == 1


def test_anonymous_visitors_cannot_reissue(client):
    app = client.application
    donation = gift(client, utc(2025, 6, 1))
    issue_2025(app)
    supporter_id, _ = supporter_of(app, donation)

    response = client.post(f"/staff/supporters/{supporter_id}/statements",
                           data={"csrf_token": login_csrf(client), "fiscal_year": "2025"})

    assert is_sign_in_redirect(response)
    assert count(app, OutboxEmail, OutboxEmail.template == "annual_statement") == 1


def test_staff_pdf_of_another_supporters_statement_is_not_found(client, two_supporters):
    app = client.application
    ada, bob = two_supporters
    staff = signed_in(client, Role.ACCOUNTANT)
    ada_id, bob_statement = supporter_of(app, ada)[0], statement_id(app, supporter_of(app, bob)[0])

    assert staff.get(f"/staff/supporters/{ada_id}/statements/{bob_statement}.pdf").status_code == 404
    own = staff.get(f"/staff/supporters/{ada_id}/statements/{statement_id(app, ada_id)}.pdf")
    assert own.status_code == 200 and "S2025-000001" in pdf_text(own.data)
