"""The issue's "done when" for languages, in Chromium: a German reader (a browser set to de-DE) on a German
publisher page (lang="de", another origin) gets the ask, the donation form and the checkout page in German,
pays with 4242 4242 4242 4242, and the receipt that reaches the SMTP server is German, amounts and date too."""
from __future__ import annotations

import re

import pytest
from babel.dates import format_date
from sqlalchemy import select

from tests.browser.conftest import skip_without_chromium, wipe_committed

skip_without_chromium()

EMAIL = "leserin@example.com"
AMOUNT = re.compile(r"25,00\s€")  # Babel puts a no-break space between the amount and the sign


@pytest.fixture
def clean(live_app):
    """The gift is committed; afterwards it goes, so that the other browser tests start clean."""
    yield
    wipe_committed(live_app[0])

def german_article(origin: str) -> str:
    body = "".join(f"<p>Absatz {n} der Geschichte.</p>" for n in range(1, 5))
    return f"""<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Flussgeschichte</title>
<meta property="article:section" content="Lokales"></head>
<body><h1>Wie die Flussstädte ihre Bibliotheken wieder aufbauten</h1><div id="story">{body}</div>
<script src="{origin}/embed/v1/cta.js" data-selector="#story" async></script></body></html>"""


def test_german_reader_gives_in_german_and_gets_a_german_receipt(new_context, live_app, publisher, campaigns,
                                                                 mailbox, clean):
    app, origin = live_app
    campaigns("default", headline="Support our work", button_label="Give now",
              translations=[{"locale": "de", "headline": "Unterstützen Sie unabhängigen Journalismus",
                             "body": "Ihre Spende hält unsere Recherchen frei zugänglich.",
                             "button_label": "Jetzt spenden"}])
    publisher.pages["/lokales/fluss.html"] = german_article(origin)
    page = new_context(locale="de-DE").new_page()

    # -- the ask, on the publisher's German page ----------------------------------------------------------
    page.goto(f"{publisher.origin}/lokales/fluss.html")
    host = page.locator("[data-donations-ask='default']")
    host.wait_for(state="attached")
    assert host.locator("h2").inner_text() == "Unterstützen Sie unabhängigen Journalismus"
    assert host.locator("legend").inner_text() == "Betrag wählen"
    assert host.get_by_text("oder monatlich unterstützen").is_visible()
    host.get_by_label(AMOUNT).check()
    with page.expect_navigation(url=f"{origin}/donate*"):
        host.get_by_role("button", name="Jetzt spenden").click()

    # -- the donation form -------------------------------------------------------------------------------
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.get_by_label(AMOUNT).is_checked()
    assert page.get_by_text("Hierhin schicken wir Ihre Quittung.").is_visible()
    page.get_by_role("button", name="Jetzt spenden").click()  # without an email address first
    assert page.get_by_role("alert").first.inner_text() == "Bitte prüfen Sie die unten markierten Felder."
    assert page.get_by_text("Bitte geben Sie Ihre E-Mail-Adresse ein.").is_visible()
    page.get_by_role("textbox", name="E-Mail").fill(EMAIL)
    page.get_by_role("textbox", name="Name (freiwillig)").fill("Erika Muster")
    page.get_by_role("button", name="Jetzt spenden").click()

    # -- the (sandbox) checkout page -----------------------------------------------------------------------
    page.wait_for_url(f"{origin}/sandbox/checkout/*")
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.get_by_role("note").inner_text() == "Testmodus – es fließt kein Geld"
    assert re.fullmatch(r"25,00\s€ bezahlen", page.get_by_role("heading", level=1).inner_text())
    page.get_by_label("Kartennummer").fill("4000 0000 0000 0002")  # declined first: a German message
    page.get_by_role("button", name=re.compile(r"25,00\s€ spenden")).click()
    assert page.get_by_role("alert").inner_text() == "Ihre Karte wurde abgelehnt. Bitte versuchen Sie es mit einer anderen Karte."
    page.get_by_label("Kartennummer").fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile(r"25,00\s€ spenden")).click()

    # -- the thank-you page ----------------------------------------------------------------------------
    page.wait_for_url(f"{origin}/thanks*")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Vielen Dank, dass Sie")
    page.locator("#donation-status[data-status='succeeded']").wait_for()
    assert re.search(r"Ihre Spende von 25,00\s€ ist angekommen", page.locator("#donation-status").inner_text())

    # -- the books and the receipt ----------------------------------------------------------------------
    from donations.checkout.models import CheckoutAttempt
    from donations.extensions import db
    from donations.ledger.models import Donation, Supporter

    with app.app_context():
        donation = db.session.scalars(select(Donation)).one()
        attempt = db.session.get(CheckoutAttempt, donation.attempt_id)
        assert (donation.amount, donation.currency, attempt.locale) == (2500, "EUR", "de")
        assert db.session.scalars(select(Supporter.locale).where(Supporter.email == EMAIL)).one() == "de"
        day = format_date(donation.paid_at, "long", locale="de")  # 27. November 2026
        number = donation.receipt_number

    [receipt] = mailbox.deliver(app)
    assert receipt["To"] == EMAIL
    assert receipt["Subject"].startswith(f"Ihre Quittung {number} von ")
    text = receipt.get_body(("plain",)).get_content()
    html = receipt.get_body(("html",)).get_content()
    assert text.startswith("Guten Tag Erika Muster,\n\nvielen Dank für Ihre Spende an ")
    assert "Betrag: 25,00\u00a0€" in text
    assert f"Datum: {day}" in text and re.fullmatch(r"\d{1,2}\. [A-ZÄÖÜ][a-zäöü]+ \d{4}", day)
    assert "Ihre Spende verwalten" in text
    assert '<html lang="de">' in html and "Quittungsnummer" in html and "25,00\u00a0€" in html
    assert "receipt" not in (text + html).lower().replace("/receipts/", "")
