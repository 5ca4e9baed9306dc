"""GDPR access: a supporter downloads everything held about them, as JSON and as CSV files, from their
account link; staff with supporters.privacy do it for them, audited."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from sqlalchemy import select

from donations.accounts.tokens import manage_url
from donations.checkout.operations import FORM_CONSENT_SOURCE, MAILING_CONSENT_TEXT
from donations.extensions import db
from donations.ledger.models import Donation, Supporter
from donations.staff.models import AuditEntry
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.staff_helpers import audit_rows, in_app, signed_in, webhook_gift

PUBLIC = "http://donations.test"
EMAIL = "grace@example.com"
FORMULA_NAME = "=HYPERLINK(\"http://evil.example\",\"click\")"
SECTIONS = {"supporter", "gifts", "recurring_gifts", "recurring_gift_changes", "refunds", "receipts", "emails", "consents", "checkout_attempts"}


@pytest.fixture
def donor(app_ctx, client):
    """A supporter with a paid, partly refunded gift who ticked "keep me informed", and someone else's gift."""
    attempt = make_attempt(email=EMAIL, name=FORMULA_NAME, amount=2500, currency="EUR")
    attempt.mailing_consent_source = FORM_CONSENT_SOURCE
    other = make_attempt(email="someone.else@example.com", amount=9900)
    db.session.commit()
    session = checkout_session(attempt)
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    assert post_event(client, event("checkout.session.completed", checkout_session(other))).status_code == 200
    assert post_event(client, event("charge.refunded", {
        "id": "ch_1", "object": "charge", "payment_intent": session["payment_intent"], "amount": 2500,
        "amount_refunded": 500, "currency": "eur"})).status_code == 200
    person = db.session.scalars(select(Supporter).where(Supporter.email == EMAIL)).one()
    return person


def link(person: Supporter) -> str:
    return manage_url(person.id, person.email).removeprefix(PUBLIC)


def test_supporter_downloads_all_their_data_as_json(client, donor):
    response = client.get(f"{link(donor)}/data.json")

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "no-store" in response.headers["Cache-Control"]
    data = response.get_json()
    assert SECTIONS <= set(data)
    assert data["supporter"][0]["email"] == EMAIL and data["supporter"][0]["name"] == FORMULA_NAME
    [gift] = data["gifts"]
    assert (gift["amount_minor"], gift["currency"], gift["formatted"], gift["status"]) == (
        2500, "EUR", "€25.00", "partially_refunded")
    assert gift["receipt_number"] and gift["amount_refunded_minor"] == 500
    assert [(r["amount_minor"], r["formatted"]) for r in data["refunds"]] == [(500, "€5.00")]
    assert [r["number"] for r in data["receipts"]] == [gift["receipt_number"]]
    assert [(e["kind"], e["to"]) for e in data["emails"]] == [("receipt", EMAIL), ("refund", EMAIL)]
    assert data["emails"][0]["subject"]
    assert [(c["action"], c["wording"], c["source"]) for c in data["consents"]] == [
        ("given", MAILING_CONSENT_TEXT, "donation form")]
    assert [(a["email"], a["amount_minor"]) for a in data["checkout_attempts"]] == [(EMAIL, 2500)]
    # Nothing of anyone else.
    assert "someone.else@example.com" not in response.get_data(as_text=True)
    assert "9900" not in json.dumps(data["gifts"])


def test_supporter_downloads_one_csv_per_section_with_formulas_defused(client, donor):
    response = client.get(f"{link(donor)}/data.zip")

    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert {name.removesuffix(".csv") for name in archive.namelist()} == SECTIONS
    [row] = list(csv.DictReader(io.StringIO(archive.read("supporter.csv").decode())))
    assert row["email"] == EMAIL
    assert row["name"] == "'" + FORMULA_NAME  # a spreadsheet shows the text, never runs it
    [gift] = list(csv.DictReader(io.StringIO(archive.read("gifts.csv").decode())))
    assert (gift["amount_minor"], gift["currency"]) == ("2500", "EUR")
    [attempt] = list(csv.DictReader(io.StringIO(archive.read("checkout_attempts.csv").decode())))
    assert attempt["name"].startswith("'=")
    assert list(csv.reader(io.StringIO(archive.read("recurring_gifts.csv").decode()))) == [["(none)"]]


def test_the_manage_page_links_to_the_downloads_and_to_erasure(client, donor):
    page = link(donor)  # one link: a second one signed a second later differs
    html = client.get(page).get_data(as_text=True)

    for target in ("/data.json", "/data.zip", "/erase"):
        assert f'{page}{target}"' in html


@pytest.mark.parametrize("suffix", ["data.json", "data.zip", "erase"])
def test_a_tampered_link_gets_400_not_data(client, donor, suffix):
    assert client.get(f"{link(donor)}x/{suffix}").status_code == 400


@pytest.mark.parametrize("fmt", ["json", "zip"])
def test_staff_download_a_supporters_data_and_it_is_audited(app, client, fmt):
    donation_id = webhook_gift(client, email=EMAIL)
    staff = signed_in(client, "staff")
    with in_app(app):
        supporter_id = db.session.get(Donation, donation_id).supporter_id

    response = staff.get(f"/staff/supporters/{supporter_id}/data.{fmt}")

    assert response.status_code == 200
    assert EMAIL.encode() in (response.data if fmt == "json" else
                              zipfile.ZipFile(io.BytesIO(response.data)).read("supporter.csv"))
    [entry] = audit_rows(app, AuditEntry.action == "supporter.data_export")
    assert (entry["actor_id"], entry["object_id"], entry["detail"]) == (staff.id, str(supporter_id), {"format": fmt})


def test_the_accountant_may_not_download_personal_data(app, client):
    donation_id = webhook_gift(client, email=EMAIL)
    accountant = signed_in(client, "accountant")
    with in_app(app):
        supporter_id = db.session.get(Donation, donation_id).supporter_id

    assert accountant.get(f"/staff/supporters/{supporter_id}/data.json").status_code == 403
    assert "data.json" not in accountant.get(f"/staff/supporters/{supporter_id}").get_data(as_text=True)


def test_the_supporter_page_offers_the_download_and_erasure_once_in_its_body_not_its_title(app, client):
    """The page's <title> is the supporter's address; the GDPR section stands once, in the page."""
    import re

    donation_id = webhook_gift(client, email=EMAIL)
    staff = signed_in(client, "staff")
    with in_app(app):
        supporter_id = db.session.get(Donation, donation_id).supporter_id

    html = staff.get(f"/staff/supporters/{supporter_id}").get_data(as_text=True)

    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert title.startswith(EMAIL) and "<" not in title
    assert html.count("Personal data (GDPR)") == 1 and html.count('name="reason"') == 1
