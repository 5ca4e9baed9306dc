"""Languages: the reader's pages, the embed and the emails in English, German and French; the locale chosen from
the page, then the supporter's saved language, then the browser, then English; amounts and dates formatted for
the same locale as the words around them."""
from __future__ import annotations

import html as html_lib
import re

import pytest
from babel.dates import format_date
from flask import g
from sqlalchemy import select

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.i18n import select_locale
from donations.ledger.models import ConsentRecord, Donation, Supporter
from donations.mail.models import OutboxEmail
from donations.payments.stripe_gateway import StripeGateway, checkout_locale
from tests.functional.helpers import hidden_value
from tests.functional.test_account import account, act, give, messages, supporter
from tests.functional.test_donate_form import form_data
from tests.stripe_fake import fake_stripe  # noqa: F401  (registers the fixture)

PUBLIC = "http://donations.test"


def text(response) -> str:
    return html_lib.unescape(response.get_data(as_text=True))


def paid_on(email: str, locale: str, pattern: str = "long") -> str:
    """The day the supporter's latest gift was paid, as the receipt prints it in ``locale``: taken from the
    stored gift, not from the clock read again (midnight may have passed since)."""
    paid_at = db.session.scalars(select(Donation.paid_at).join(Supporter, Donation.supporter_id == Supporter.id)
                                 .where(Supporter.email == email).order_by(Donation.id.desc())).first()
    return format_date(paid_at, pattern, locale=locale)


def pay_in(client, locale: str, *, email: str = "leserin@example.com", amount: str = "25.00",
           frequency: str = "one_off", card: str = "4242424242424242", headers: dict | None = None):
    """A gift from a page in ``locale``: the donation form (with ``locale=`` as the ask passes it), then the
    sandbox checkout page, which follows the attempt's locale by itself. Returns the checkout page's HTML."""
    response = client.post(f"/donate?locale={locale}", headers=headers or {},
                           data=form_data(client, email=email, amount=amount, frequency=frequency))
    assert response.status_code == 303, response.get_data(as_text=True)
    checkout = response.headers["Location"].removeprefix(PUBLIC)
    page = client.get(checkout)
    paid = client.post(checkout, data={"csrf_token": hidden_value(page.get_data(as_text=True), "csrf_token"),
                                       "card_number": card})
    assert paid.status_code == 303, paid.get_data(as_text=True)
    return text(page)


def receipts() -> list[OutboxEmail]:
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "receipt")
                                   .order_by(OutboxEmail.id)))


# -- which locale -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "headers", "expected"), [
    ("/donate", {}, "en"),                                                    # nothing said: English
    ("/donate", {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, "de"),         # the browser
    ("/donate", {"Accept-Language": "fr-CH, fr;q=0.9"}, "fr"),
    ("/donate", {"Accept-Language": "tlh"}, "en"),                             # a language we do not have
    ("/donate?locale=fr", {"Accept-Language": "de"}, "fr"),                    # the page beats the browser
    ("/donate?locale=de-AT", {}, "de"),                                        # a region: its language
    ("/donate?locale=xx", {"Accept-Language": "de"}, "de"),                    # nonsense: ignored
    ("/staff/login?locale=de", {"Accept-Language": "de"}, "en"),               # staff pages stay English
])
def test_locale_comes_from_the_page_then_the_browser_then_english(app, path, headers, expected):
    with app.test_request_context(path, headers=headers):
        assert select_locale() == expected


def test_supporter_saved_language_comes_after_the_page_and_before_the_browser(app_ctx, client):
    give(client, frequency="one_off", amount="25.00")
    supporter().locale = "fr"
    db.session.flush()
    path = account()

    saved = text(client.get(path, headers={"Accept-Language": "de"}))
    named = text(client.get(f"{path}?locale=de", headers={"Accept-Language": "en"}))

    assert "<h1>Vos dons</h1>" in saved and '<html lang="fr">' in saved
    assert "25,00\u00a0€" in saved  # amounts follow the page's language too
    assert "<h1>Ihre Spenden</h1>" in named and "25,00\u00a0€" in named


def test_the_ask_passes_its_locale_on_to_the_donation_page(client):
    fragment = text(client.get("/embed/cta/default.html?locale=de"))

    assert hidden_value(fragment, "locale") == "de"
    assert "Betrag wählen" in fragment and "oder monatlich unterstützen" in fragment


# -- the donation page ------------------------------------------------------------------------------------


def test_german_donation_page_is_in_german_with_german_amounts(client):
    page = text(client.get("/donate?locale=de&frequency=monthly"))

    assert '<html lang="de">' in page
    assert "Monatlicher Betrag" in page and "Monatlich spenden" in page
    assert "Diese Spende wiederholt sich jeden Monat" in page
    assert "Hierhin schicken wir Ihre Quittung." in page
    assert "Name (freiwillig)" in page
    assert re.search(r"\d+,00\u00a0€", page), "presets as Germans write them"
    assert 'action="/donate?locale=de"' in page  # the answer to the form stays German


def test_german_form_errors_are_in_german(client):
    response = client.post("/donate?locale=de", data=form_data(client, email="", amount="other",
                                                               custom_amount="0.10"))

    page = text(response)
    assert response.status_code == 400
    assert "Bitte prüfen Sie die unten markierten Felder." in page
    assert "Bitte geben Sie Ihre E-Mail-Adresse ein." in page
    assert re.search(r"Die kleinste Spende beträgt \d+,\d\d\u00a0€\.", page)


def test_french_donation_page_and_errors_are_in_french(client):
    page = text(client.get("/donate?locale=fr"))
    response = client.post("/donate?locale=fr", data=form_data(client, email="pas-une-adresse"))

    assert '<html lang="fr">' in page and "Nom (facultatif)" in page and "Autre montant" in page
    assert re.search(r"\d+,00\u00a0€", page)
    assert response.status_code == 400
    assert "Saisissez une adresse e-mail valide, par exemple nom@example.com." in text(response)


def test_english_stays_the_default(client):
    page = text(client.get("/donate"))

    assert '<html lang="en">' in page and "We send your receipt here." in page and "€25.00" in page


# -- the checkout ------------------------------------------------------------------------------------------


def test_sandbox_checkout_and_thank_you_page_follow_the_attempt_locale(app_ctx, client):
    response = client.post("/donate?locale=de", data=form_data(client))
    checkout = response.headers["Location"].removeprefix(PUBLIC)

    page = text(client.get(checkout))  # no locale in the address: the checkout remembers the reader's
    declined = client.post(checkout, data={"csrf_token": hidden_value(page, "csrf_token"),
                                           "card_number": "4000 0000 0000 0002"})
    paid = client.post(checkout, data={"csrf_token": hidden_value(page, "csrf_token"),
                                       "card_number": "4242 4242 4242 4242"})
    thanks = text(client.get(paid.headers["Location"].removeprefix(PUBLIC)))

    assert "Testmodus – es fließt kein Geld" in page and "25,00\u00a0€ bezahlen" in page
    assert "Spende an" in page  # the description Stripe would show
    assert declined.status_code == 402 and "Ihre Karte wurde abgelehnt. Bitte versuchen Sie es mit einer anderen Karte." in text(declined)
    assert "Vielen Dank, dass Sie" in thanks and "25,00\u00a0€" in thanks


@pytest.mark.parametrize(("locale", "expected"), [("de", "de"), ("fr_CH", "fr"), ("en_GB", "en"), ("nl", "auto"),
                                                  ("", "auto")])
def test_stripe_checkout_locale_for_the_reader(locale, expected):
    assert checkout_locale(locale) == expected


def test_stripe_checkout_session_is_opened_in_the_reader_language(app, client, fake_stripe,  # noqa: F811
                                                                    monkeypatch):
    monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway("sk_test_123", fake_stripe.url))
    body = {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "monthly",
            "email": "a@example.com"}

    assert client.post("/api/v1/checkout-sessions?locale=de", json=body).status_code == 201
    german = fake_stripe.last.form
    assert client.post("/api/v1/checkout-sessions", json=body, headers={"Accept-Language": "fr"}).status_code == 201
    french = fake_stripe.last.form
    assert client.post("/api/v1/checkout-sessions?locale=nl", json=body).status_code == 201

    assert (german["locale"], french["locale"], fake_stripe.last.form["locale"]) == ("de", "fr", "auto")
    assert german["line_items[0][price_data][product_data][name]"].startswith("Monatliche Spende an ")


# -- the emails --------------------------------------------------------------------------------------------


def test_german_reader_gets_a_german_receipt(app_ctx, client):
    pay_in(client, "de", email="leserin@example.com")

    [receipt] = receipts()
    body, html = receipt.body_text, html_lib.unescape(receipt.body_html)
    assert receipt.subject.startswith("Ihre Quittung ")
    assert body.startswith("Guten Tag Ada Reader,\n\nvielen Dank für Ihre Spende an ")
    assert "Betrag: 25,00\u00a0€" in body
    day = paid_on("leserin@example.com", "de")
    assert f"Datum: {day}" in body and re.search(r"\d\. [A-ZÄÖÜ][a-zä]+ \d{4}", day)
    assert "Rhythmus: Einmalig" in body
    assert "Ihre Spende verwalten" in body and "Bitte bewahren Sie diese E-Mail" in body
    assert '<html lang="de">' in html and "25,00\u00a0€" in html and "Quittungsnummer" in html
    assert "Receipt" not in body + html and "€25.00" not in body + html
    assert supporter("leserin@example.com").locale == "de"  # saved for the emails to come


def test_french_reader_gets_a_french_receipt(app_ctx, client):
    pay_in(client, "fr", email="lectrice@example.com", frequency="monthly", amount="10.00")

    [receipt] = receipts()
    assert receipt.subject.startswith("Votre reçu ")
    assert "Bonjour Ada Reader,\n\nMerci pour votre don à " in receipt.body_text
    # French puts a no-break space before a colon, between each label and its value.
    assert "Montant\u00a0: 10,00\u00a0€" in receipt.body_text and "Montant: " not in receipt.body_text
    assert f"Date\u00a0: {paid_on('lectrice@example.com', 'fr')}" in receipt.body_text
    assert "Fréquence\u00a0: Mensuel" in receipt.body_text and "Prochain don\u00a0: " in receipt.body_text
    assert re.search(r"Numéro de reçu\u00a0: \S+", receipt.body_text)
    assert not re.search(r"\S:", receipt.body_text.replace("https:", "").replace("http:", ""))
    assert '<html lang="fr">' in receipt.body_html


def test_english_receipt_is_unchanged(app_ctx, client):
    pay_in(client, "en", email="reader@example.com")

    [receipt] = receipts()
    assert receipt.subject.startswith("Your receipt ")
    assert "Amount: €25.00" in receipt.body_text and f"Date: {paid_on('reader@example.com', 'en', 'd MMMM y')}" \
        in receipt.body_text


def test_saved_language_wins_over_the_page_of_a_later_gift(app_ctx, client):
    pay_in(client, "fr", email="lectrice@example.com")
    pay_in(client, "de", email="lectrice@example.com", amount="50.00")

    first, second = receipts()
    assert first.subject.startswith("Votre reçu ") and second.subject.startswith("Votre reçu ")
    assert "50,00\u00a0€" in second.body_text


# -- the account page: the supporter's language ----------------------------------------------------------


def test_supporter_changes_language_and_the_next_email_follows(app_ctx, client):
    give(client, frequency="monthly", amount="10.00")  # an English gift
    person = supporter()
    assert person.locale == "en"
    path = account()
    page = text(client.get(path))
    assert '<select id="language-select" name="language">' in page and 'value="en" lang="en" selected' in page

    response = client.post(f"{path}/language", data={"csrf_token": hidden_value(page, "csrf_token"),
                                                     "language": "de"})

    assert response.status_code == 303 and response.headers["Location"] == path
    db.session.expire_all()
    assert supporter().locale == "de"
    after = text(client.get(path))
    assert messages(after) == [("notice", "Gespeichert. Wir schreiben Ihnen ab jetzt in dieser Sprache.")]
    assert "<h1>Ihre Spenden</h1>" in after and 'value="de" lang="de" selected' in after
    # The next email (here: the confirmation of a cancellation) is German, its amount and date too.
    gift_id = person.recurring_donations[0].id
    assert act(client, path, gift_id, "cancel", when="period_end").status_code == 303
    # The sandbox delivers its webhook events to the app in the middle of that request; the answer stays German.
    [(category, flashed)] = messages(text(client.get(path)))
    assert category == "notice" and re.fullmatch(
        r"Ihre Spende endet am \d{1,2}\. [A-ZÄÖÜ][a-zä]+ \d{4}; es wird nichts mehr abgebucht\. "
        r"Wir haben Ihnen eine Bestätigung geschickt\.", flashed), flashed
    [email] = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "recurring_canceled")).all()
    assert email.subject.startswith("Ihre monatliche Spende an ")
    assert "wie gewünscht ist Ihre Spende von 10,00\u00a0€ monatlich an " in email.body_text
    assert re.search(r"Ihre Spende endet am \d{1,2}\. [A-ZÄÖÜ][a-zä]+ \d{4}; es wird nichts mehr abgebucht\.",
                     email.body_text)


@pytest.mark.parametrize("language", ["nl", "", "de\x00", "x" * 500, "DE"])
def test_a_language_we_do_not_offer_is_refused_with_400(app_ctx, client, language):
    give(client, frequency="one_off", amount="25.00")
    path = account()
    page = text(client.get(path))

    response = client.post(f"{path}/language", data={"csrf_token": hidden_value(page, "csrf_token"),
                                                     "language": language})

    assert response.status_code == 400
    db.session.expire_all()
    assert supporter().locale == "en"


def test_language_change_needs_the_form_token(app_ctx, client):
    give(client, frequency="one_off", amount="25.00")

    response = client.post(f"{account()}/language", data={"language": "fr"})

    assert response.status_code == 400
    db.session.expire_all()
    assert supporter().locale == "en"


def test_manage_link_email_follows_the_saved_language(app_ctx, client):
    give(client, frequency="one_off", amount="25.00")
    supporter().locale = "fr"
    db.session.flush()
    page = client.get("/account").get_data(as_text=True)

    client.post("/account", data={"csrf_token": hidden_value(page, "csrf_token"), "email": "reader@example.com"})

    [email] = db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "manage_link")).all()
    assert email.subject.startswith("Gérer vos dons à ")
    assert "Voici votre lien" in email.body_text


# -- the embed ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "choose", "close"), [
    ("de", "Betrag wählen", "Schließen"), ("de-AT", "Betrag wählen", "Schließen"),
    ("fr", "Choisissez un montant", "Fermer"), ("en", "Choose an amount", "Close"),
    ("nl", "Kies een bedrag", "Sluiten"), ("ja", "Choose an amount", "Close"),
])
def test_embed_labels_come_from_the_catalogues(client, locale, choose, close):
    labels = client.get(f"/embed/v1/campaigns.json?locale={locale}").get_json()["labels"]

    assert (labels["choose"], labels["close"]) == (choose, close)


def test_supporters_from_before_have_no_saved_language(app_ctx):
    assert Supporter.__table__.c.locale.nullable
    db.session.add(Supporter(email="old@example.com"))
    db.session.flush()
    assert db.session.scalars(select(Supporter.locale).where(Supporter.email == "old@example.com")).one() is None
    assert not db.session.scalars(select(Donation)).all()


# -- review findings: reader-facing words that stayed English or switched language --------------------------

GERMAN_CONSENT = "Halten Sie mich per E-Mail über Ihre Arbeit auf dem Laufenden"


def test_mailing_consent_is_asked_and_recorded_in_the_readers_language(app_ctx, client):
    page = text(client.get("/donate?locale=de"))
    assert GERMAN_CONSENT in page and "Keep me informed about our work by email" not in page

    response = client.post("/donate?locale=de", data=form_data(client, email="leserin@example.com",
                                                               mailing_consent="y"))
    assert response.status_code == 303
    checkout = response.headers["Location"].removeprefix(PUBLIC)
    form = text(client.get(checkout))
    client.post(checkout, data={"csrf_token": hidden_value(form, "csrf_token"), "card_number": "4242424242424242"})

    [record] = db.session.scalars(select(ConsentRecord)).all()
    assert (record.action, record.source, record.wording) == ("given", "donation form", GERMAN_CONSENT)


def test_back_from_a_cancelled_checkout_the_whole_form_is_in_the_language_of_the_gift(app_ctx, client):
    assert client.post("/donate?locale=de", data=form_data(client, frequency="monthly")).status_code == 303
    [attempt] = db.session.scalars(select(CheckoutAttempt)).all()

    # The browser prefers French, the reader gave in German: the page, its choices and its links stay German.
    page = text(client.get(f"/donate?attempt={attempt.id}", headers={"Accept-Language": "fr"}))

    assert '<html lang="de">' in page
    choices = re.search(r'<p class="choices" id="frequency-choice">(.*?)</p>', page).group(1)
    assert re.findall(r">([^<>]+)</(?:a|strong)>", choices) == ["Einmalig", "Monatlich", "Jährlich"]
    links = re.findall(r'href="(/donate\?[^"]*)"', page)
    assert links and all("locale=de" in link for link in links), links


def test_the_embeds_monthly_link_keeps_the_language_of_the_ask(client):
    fragment = text(client.get("/embed/cta/default.html?locale=de"))

    monthly = re.search(r'<a class="dn-monthly" href="([^"]*)"', fragment).group(1)
    assert "frequency=monthly" in monthly and "locale=de" in monthly


def test_language_select_starts_on_the_language_of_the_page_when_none_is_saved(app_ctx, client):
    give(client, frequency="one_off", amount="25.00")
    supporter().locale = None  # a supporter from before languages were saved
    db.session.flush()
    path = account()

    page = text(client.get(path, headers={"Accept-Language": "de"}))
    assert "<h1>Ihre Spenden</h1>" in page
    assert 'value="de" lang="de" selected' in page and 'value="en" lang="en" selected' not in page
    # "Save language" as the page offers it keeps the supporter in German.
    selected = re.search(r'<option value="(\w+)" lang="\w+" selected', page).group(1)
    client.post(f"{path}/language", data={"csrf_token": hidden_value(page, "csrf_token"), "language": selected})
    db.session.expire_all()
    assert supporter().locale == "de"


def test_the_rate_limit_page_is_in_the_readers_language(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_PER_IP", "1 per minute")
    assert client.post("/donate?locale=de", data=form_data(client, email="a@example.com")).status_code == 303

    limited = client.post("/donate?locale=de", data=form_data(client, email="b@example.com"))

    assert limited.status_code == 429
    assert re.search(r"Zu viele Spendenversuche in kurzer Zeit\. Es wurde nichts abgebucht; bitte versuchen Sie "
                     r"es in \d+ Sekunden? noch einmal\.", text(limited))
    api = client.post("/api/v1/checkout-sessions", headers={"Accept-Language": "de"},
                      json={"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
                            "email": "c@example.com"})
    assert api.status_code == 429 and api.get_json()["error"].startswith("Too many donation attempts")


def test_a_payment_provider_outage_is_explained_in_the_readers_language(app, client, fake_stripe,  # noqa: F811
                                                                        monkeypatch):
    monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway("sk_test_123", fake_stripe.url))
    data = form_data(client)
    fake_stripe.fail_next(500)

    response = client.post("/donate?locale=de", data=data)

    assert response.status_code == 503
    assert ("Der Zahlungsanbieter ist nicht erreichbar. Es wurde nichts abgebucht; bitte versuchen Sie es noch "
            "einmal.") in text(response)


def test_a_refused_account_form_is_explained_in_the_readers_language(app_ctx, app, client, monkeypatch):
    give(client, frequency="one_off", amount="25.00")
    supporter().locale = "de"
    db.session.flush()
    path = account()
    # The form's own check (behind the app-wide CSRF check, which has its own German page).
    monkeypatch.setitem(app.config, "WTF_CSRF_CHECK_DEFAULT", False)
    g.pop("csrf_valid", None)  # the test's requests share one app context: forget the last one's check

    response = client.post(f"{path}/mailing-consent/withdraw", data={})

    page = text(response)
    assert response.status_code == 400 and '<html lang="de">' in page
    assert "Dieses Formular ist abgelaufen. Bitte versuchen Sie es noch einmal." in page
    assert "The browser (or proxy)" not in page
