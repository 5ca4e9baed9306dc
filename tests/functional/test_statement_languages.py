"""The annual statement in the supporter's language: words, amounts and dates of the PDF in German or French for a
supporter who reads us in it, the language frozen with the statement (a copy keeps it, whatever the supporter
reads us in later), and statements issued before there was a language stay English."""
from __future__ import annotations

import email
import email.policy
import re
from datetime import date

import pytest
from babel.dates import format_date
from sqlalchemy import select

from donations.accounts.tokens import manage_url
from donations.extensions import db
from donations.ledger.models import Supporter
from donations.mail.models import OutboxEmail
from donations.mail.sender import send_due
from donations.reports import statements
from donations.reports.models import AnnualStatement
from tests.functional.statement_helpers import gift, pdf_text, refund, utc
from tests.staff_helpers import in_app

PUBLIC = "http://donations.test"


@pytest.fixture
def publisher(app, monkeypatch):
    for key, value in {"PUBLISHER_LEGAL_NAME": "Riverside Media gGmbH", "PUBLISHER_TAX_ID": "DE123456789",
                       "PUBLISHER_REGISTRATION": "HRB 4242"}.items():
        monkeypatch.setitem(app.config, key, value)


def reads_in(app, address: str, locale: str | None) -> None:
    """The supporter's saved language, as their account page's language form saves it."""
    with in_app(app):
        db.session.scalars(select(Supporter).where(Supporter.email == address)).one().locale = locale
        db.session.commit()


def two_gifts_in_2026(client, address: str) -> None:
    """25.00 EUR on 3 February, 40.00 EUR on 1 June with 10.00 refunded."""
    gift(client, utc(2026, 2, 3, 10, 0), 2500, "EUR", email=address)
    refunded = gift(client, utc(2026, 6, 1, 9, 0), 4000, "EUR", email=address)
    refund(client, refunded, 1000)


def issue_2026(app) -> AnnualStatement:
    with in_app(app):
        assert statements.issue_statements(2026)["issued"] == 1
        statement = db.session.scalars(select(AnnualStatement)).one()
        db.session.expunge(statement)
        return statement


def words(text: str) -> str:
    """The PDF's text with each run of spaces, line breaks and Babel's no-break spaces (``25,00\u00a0€``,
    ``Numéro fiscal\u00a0:``) as one plain space: phrases are found wherever the lines break."""
    return re.sub(r"\s+", " ", text)


def statement_pdf(client, statement: AnnualStatement, address: str, **headers) -> str:
    """The PDF as the supporter downloads it from their account page."""
    with client.application.test_request_context():
        path = manage_url(statement.supporter_id, address).removeprefix(PUBLIC)
    response = client.get(f"{path}/statements/{statement.id}.pdf", headers=headers)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return words(pdf_text(response.data))


def day_in(day: date, locale: str) -> str:
    return format_date(day, "long", locale=locale)


GERMAN = ["Jahresübersicht Ihrer Spenden 2026", "Übersicht S2026-000001", "Nummer der Übersicht", "Geschäftsjahr",
          "1. Januar 2026 – 31. Dezember 2026", "Ausgestellt am", "Vielen Dank, dass Sie The Riverside Chronicle",
          "Datum", "Quittung", "Betrag", "Erstattet", "Netto gespendet", "3. Februar 2026", "1. Juni 2026",
          "25,00 €", "40,00 €", "−10,00 €", "30,00 €", "Summe in EUR (2 Spenden)", "65,00 €", "55,00 €",
          "Steuernummer: DE123456789", "Registereintrag: HRB 4242", "Alle Datumsangaben sind Kalendertage in UTC.",
          "Diese Übersicht wurde von Riverside Media gGmbH", "Seite 1 von 1"]
FRENCH = ["Relevé annuel de vos dons 2026", "Relevé S2026-000001", "Numéro du relevé", "Exercice",
          "1 janvier 2026 – 31 décembre 2026", "Émis le", "Merci de soutenir The Riverside Chronicle",
          "Date", "Reçu", "Montant", "Remboursé", "Net donné", "3 février 2026", "1 juin 2026",
          "25,00 €", "40,00 €", "−10,00 €", "30,00 €", "Total en EUR (2 dons)", "65,00 €", "55,00 €",
          "Numéro fiscal : DE123456789", "Immatriculation : HRB 4242", "Les dates sont des jours en temps universel",
          "Ce relevé a été émis par Riverside Media gGmbH", "Page 1 sur 1"]
ENGLISH = ["Annual donation statement 2026", "Statement S2026-000001", "Statement number", "Fiscal year",
           "1 January 2026 – 31 December 2026", "Issued on", "Thank you for supporting The Riverside Chronicle",
           "Date", "Receipt", "Amount", "Refunded", "Net given", "3 February 2026", "1 June 2026",
           "€25.00", "€40.00", "−€10.00", "€30.00", "Total in EUR (2 gifts)", "€65.00", "€55.00",
           "Tax ID: DE123456789", "Registration: HRB 4242", "Dates are days in UTC.",
           "This statement was issued by Riverside Media gGmbH", "Page 1 of 1"]
#: What only the English statement says: none of it may be left in a translated one.
ENGLISH_ONLY = ["Annual donation statement", "Statement number", "Fiscal year", "Issued on", "Thank you",
                "Refunded", "Net given", "Total in", "gifts", "Tax ID", "Registration:", "Dates are days",
                "issued by", "Page 1 of", "February", "€25.00", "€65.00"]


@pytest.mark.parametrize("saved,expected", [("de", GERMAN), ("de-DE", GERMAN), ("fr", FRENCH), (None, ENGLISH),
                                            ("es", ENGLISH), ("en-GB", ENGLISH)])
def test_the_statement_pdf_is_in_the_supporters_language_with_amounts_and_dates_for_it(
        app, client, publisher, saved, expected):
    two_gifts_in_2026(client, "leser@example.com")
    reads_in(app, "leser@example.com", saved)

    statement = issue_2026(app)
    # The account page is asked for in English: the document keeps the supporter's language all the same.
    text = statement_pdf(client, statement, "leser@example.com", **{"Accept-Language": "en"})

    missing = [phrase for phrase in expected if phrase not in text]
    assert not missing, text
    if expected is not ENGLISH:
        assert [phrase for phrase in ENGLISH_ONLY if phrase in text] == [], text
        assert "COPY" not in text and "KOPIE" not in text and "COPIE" not in text
    # Neither claims to be the legal tax receipt of its country.
    assert "Zuwendungsbestätigung" not in text and "reçu fiscal" not in text.lower()


def test_french_counts_one_gift_in_the_singular(app, client):
    gift(client, utc(2026, 3, 1), 1250, "USD", email="lecteur@example.com")
    reads_in(app, "lecteur@example.com", "fr")

    text = statement_pdf(client, issue_2026(app), "lecteur@example.com")

    assert "Total en USD (1 don)" in text and "12,50 $US" in text


def test_the_language_is_frozen_with_the_statement(app, client):
    two_gifts_in_2026(client, "leser@example.com")
    reads_in(app, "leser@example.com", "de")
    statement = issue_2026(app)

    assert statement.content["locale"] == "de"
    reads_in(app, "leser@example.com", "fr")  # the supporter changes their language afterwards

    text = statement_pdf(client, statement, "leser@example.com")
    assert "Jahresübersicht Ihrer Spenden 2026" in text and "25,00 €" in text and "Relevé" not in text


def test_a_german_supporter_gets_the_statement_email_and_its_copy_with_the_pdf_in_german(
        app, client, smtp_server, monkeypatch):
    host, port, received = smtp_server
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://{host}:{port}")
    two_gifts_in_2026(client, "leser@example.com")
    reads_in(app, "leser@example.com", "de")
    with in_app(app):
        db.session.execute(OutboxEmail.__table__.delete())  # the receipts; this test is about the statement
        db.session.commit()
    statement = issue_2026(app)
    reads_in(app, "leser@example.com", "fr")  # later on, the supporter reads us in French
    with in_app(app):
        stored = db.session.get(AnnualStatement, statement.id)
        statements.reissue_statement(stored)
        db.session.commit()
        # The days the documents print, as stored (they differ if midnight passed in between).
        issued_on, reissued_on = stored.issued_at.date(), stored.reissued_at.date()
        assert send_due() == {"sent": 2, "retry": 0, "failed": 0}

    sent = {}
    for envelope in received:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        [attachment] = list(message.iter_attachments())
        sent[attachment.get_filename()] = (message, words(pdf_text(attachment.get_content())))
    original, original_pdf = sent["statement-S2026-000001.pdf"]
    assert original["Subject"] == "Ihre Spendenübersicht 2026 von The Riverside Chronicle"
    assert "Die Jahresübersicht Ihrer Spenden finden Sie als PDF im Anhang." in original.get_body(("plain",)).get_content()
    assert "Jahresübersicht Ihrer Spenden 2026" in original_pdf and "55,00 €" in original_pdf
    assert "KOPIE" not in original_pdf

    # The copy is the German document as issued, marked in German; its letter follows the supporter's language now.
    copy, copy_pdf = sent["statement-S2026-000001-copy-1.pdf"]
    assert copy["Subject"] == "Copie de votre relevé de dons 2026 de The Riverside Chronicle"
    assert (f"KOPIE – erneut ausgestellt am {day_in(reissued_on, 'de')}. "
            f"Das Original wurde am {day_in(issued_on, 'de')} ausgestellt.") in copy_pdf
    assert "Übersicht S2026-000001 · KOPIE" in copy_pdf
    assert "Jahresübersicht Ihrer Spenden 2026" in copy_pdf and "55,00 €" in copy_pdf
    assert "Relevé" not in copy_pdf and "COPY" not in copy_pdf


def test_a_statement_issued_before_statements_had_a_language_stays_english(app, client):
    two_gifts_in_2026(client, "leser@example.com")
    statement = issue_2026(app)
    with in_app(app):  # as stored before this change: the snapshot names no language
        row = db.session.get(AnnualStatement, statement.id)
        row.content = {key: value for key, value in row.content.items() if key != "locale"}
        db.session.commit()
    reads_in(app, "leser@example.com", "de")

    text = statement_pdf(client, statement, "leser@example.com", **{"Accept-Language": "de"})

    assert "Annual donation statement 2026" in text and "€25.00" in text and "3 February 2026" in text
    assert "Jahresübersicht" not in text and "25,00" not in text


def test_the_page_margins_carry_translations_as_css_strings():
    # Text in a style sheet is not HTML: a quote, a backslash or "</style>" in a translation must not end the string.
    assert statements._css_string('Relevé "S1" \\ </style>') == '"Relevé \\22 S1\\22  \\5c  \\3c /style\\3e "'
