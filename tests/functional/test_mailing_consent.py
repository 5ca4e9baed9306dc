"""Mailing consent: an optional, unticked box on the form and a strict boolean in the API; kept on the
attempt, copied to the supporter when the gift is booked, never withdrawn by a later gift, withdrawn on the
account page."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.ledger.models import Supporter
from tests.functional.helpers import hidden_value
from tests.functional.test_account import EMAIL, GOOD_CARD, account, local, messages
from tests.functional.test_api import VALID
from tests.functional.test_donate_form import form_data

FORM_SOURCE = "donation form: Keep me informed about our work by email"


def give(client, *, consent: bool, frequency: str = "one_off", email: str = EMAIL, amount: str = "10.00") -> None:
    """A gift as a reader makes it (form, then the sandbox's checkout page), with or without the tick."""
    data = form_data(client, frequency=frequency, amount=amount, email=email)
    if consent:
        data["mailing_consent"] = "y"
    response = client.post("/donate", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    checkout = local(response.headers["Location"])
    page = client.get(checkout).get_data(as_text=True)
    paid = client.post(checkout, data={"csrf_token": hidden_value(page, "csrf_token"), "card_number": GOOD_CARD})
    assert paid.status_code == 303, paid.get_data(as_text=True)


def supporter(email: str = EMAIL) -> Supporter:
    db.session.expire_all()
    return db.session.scalars(select(Supporter).where(Supporter.email == email)).one()


def test_the_form_offers_the_box_unticked(client):
    html = client.get("/donate").get_data(as_text=True)

    [box] = re.findall(r'<input[^>]*name="mailing_consent"[^>]*>', html)
    assert 'type="checkbox"' in box and "checked" not in box
    assert "Keep me informed about our work by email" in html


def test_a_gift_without_the_tick_gives_no_consent(app_ctx, client):
    give(client, consent=False)

    assert supporter().mailing_consent_at is None
    assert db.session.scalars(select(CheckoutAttempt)).one().mailing_consent_source is None


def test_the_tick_is_copied_to_the_supporter_with_its_words_and_time(app_ctx, client):
    give(client, consent=True)

    person = supporter()
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert attempt.mailing_consent_source == FORM_SOURCE
    assert person.mailing_consent_source == FORM_SOURCE
    assert person.mailing_consent_at == attempt.created_at


def test_the_tick_on_a_monthly_gift_is_copied_too(app_ctx, client):
    give(client, consent=True, frequency="monthly")

    assert supporter().mailing_consent_source == FORM_SOURCE


def test_a_later_gift_without_the_tick_keeps_the_earlier_consent(app_ctx, client):
    give(client, consent=True)
    consented_at = supporter().mailing_consent_at

    give(client, consent=False, amount="12.00")

    assert supporter().mailing_consent_at == consented_at


def test_the_api_takes_mailing_consent_as_a_boolean(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json={**VALID, "mailing_consent": True})

    assert response.status_code == 201
    assert db.session.scalars(select(CheckoutAttempt)).one().mailing_consent_source == "API: mailing_consent = true"


def test_the_api_without_the_field_or_with_false_asks_nothing(app_ctx, client):
    assert client.post("/api/v1/checkout-sessions", json=VALID).status_code == 201
    assert client.post("/api/v1/checkout-sessions",
                       json={**VALID, "mailing_consent": False, "amount": 3000}).status_code == 201

    assert db.session.scalars(select(CheckoutAttempt.mailing_consent_source)).all() == [None, None]


def test_a_null_mailing_consent_is_not_given_as_for_every_optional_field(app_ctx, client):
    assert client.post("/api/v1/checkout-sessions", json={**VALID, "mailing_consent": None}).status_code == 201

    assert db.session.scalars(select(CheckoutAttempt)).one().mailing_consent_source is None


@pytest.mark.parametrize("value", ["true", 1, 0, "yes", [], {}])
def test_a_non_boolean_mailing_consent_is_400_and_writes_nothing(app_ctx, client, value):
    response = client.post("/api/v1/checkout-sessions", json={**VALID, "mailing_consent": value})

    assert response.status_code == 400
    assert response.get_json() == {"errors": {"mailing_consent": "Must be true or false."}}
    assert db.session.scalar(select(func.count()).select_from(CheckoutAttempt)) == 0


def test_the_openapi_document_describes_the_field(client):
    schema = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/checkout-sessions"]["post"]
    properties = schema["requestBody"]["content"]["application/json"]["schema"]["properties"]

    assert properties["mailing_consent"]["type"] == "boolean"
    assert properties["mailing_consent"]["default"] is False


def test_the_supporter_withdraws_consent_on_the_account_page(app_ctx, client):
    give(client, consent=True)
    path = account()
    page = client.get(path).get_data(as_text=True)
    assert "You agreed on" in page and "Stop these emails" in page

    response = client.post(f"{path}/mailing-consent/withdraw", data={"csrf_token": hidden_value(page, "csrf_token")})

    assert response.status_code == 303 and response.headers["Location"] == path
    assert supporter().mailing_consent_at is None and supporter().mailing_consent_source is None
    after = client.get(path).get_data(as_text=True)
    assert "Stop these emails" not in after
    assert any("will not email you about our work" in text for _, text in messages(after))


def test_withdrawal_without_the_csrf_token_is_400_and_changes_nothing(app_ctx, client):
    give(client, consent=True)

    response = client.post(f"{account()}/mailing-consent/withdraw", data={})

    assert response.status_code == 400
    assert supporter().mailing_consent_at is not None


def test_withdrawal_with_a_tampered_link_changes_nothing(app_ctx, client):
    give(client, consent=True)
    page = client.get(account()).get_data(as_text=True)

    response = client.post("/account/not-a-token/mailing-consent/withdraw",
                           data={"csrf_token": hidden_value(page, "csrf_token")})

    assert response.status_code == 400
    assert supporter().mailing_consent_at is not None


def test_a_new_tick_after_withdrawal_consents_again(app_ctx, client):
    give(client, consent=True)
    path = account()
    page = client.get(path).get_data(as_text=True)
    client.post(f"{path}/mailing-consent/withdraw", data={"csrf_token": hidden_value(page, "csrf_token")})

    give(client, consent=True, amount="15.00")

    assert supporter().mailing_consent_source == FORM_SOURCE
