"""The donation page: reader input validated field by field; valid gifts go to checkout once."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.payments.models import SandboxObject
from tests.functional.helpers import hidden_value


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def form_data(client, **overrides) -> dict:
    html = client.get("/donate").get_data(as_text=True)
    data = {
        "csrf_token": hidden_value(html, "csrf_token"),
        "token": hidden_value(html, "token"),
        "campaign": "default",
        "amount": "25.00",
        "custom_amount": "",
        "currency": "EUR",
        "frequency": "one_off",
        "email": "reader@example.com",
        "name": "Ada Reader",
        "article_url": "https://publisher.example/news/1",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_donation_page_shows_the_ask_and_the_fields(client):
    html = client.get("/donate").get_data(as_text=True)

    assert "Consider donating to support our work" in html
    for field in ("amount", "custom_amount", "currency", "email", "name", "cover_fees", "csrf_token"):
        assert f'name="{field}"' in html


def test_choices_from_the_ask_are_carried_into_the_form(client):
    html = client.get("/donate?campaign=default&amount=50.00&currency=EUR&frequency=one_off"
                      "&article_url=https://publisher.example/a").get_data(as_text=True)

    assert 'value="50.00" checked' in html
    assert hidden_value(html, "article_url") == "https://publisher.example/a"


def test_valid_gift_redirects_to_checkout_with_the_attempt_recorded(app_ctx, client):
    response = client.post("/donate", data=form_data(client, email="Ada@Example.COM"))

    assert response.status_code == 303
    assert response.headers["Location"].startswith("http://donations.test/sandbox/checkout/cs_test_")
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert (attempt.amount, attempt.currency, attempt.email) == (2500, "EUR", "ada@example.com")
    assert attempt.article_url == "https://publisher.example/news/1"
    assert response.headers["Location"] == attempt.checkout_url


def test_custom_amount_is_used_when_other_is_chosen(app_ctx, client):
    response = client.post("/donate", data=form_data(client, amount="other", custom_amount="12.34"))

    assert response.status_code == 303
    assert db.session.scalars(select(CheckoutAttempt)).one().amount == 1234


def test_covering_the_fee_adds_it_to_the_charge(app_ctx, client):
    response = client.post("/donate", data=form_data(client, cover_fees="y"))

    assert response.status_code == 303
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    # 1.5 % + €0.25 by default: (2500 + 25) / 0.985 = 2563.45…, rounded up
    assert (attempt.amount, attempt.covered_fee) == (2564, 64)


def test_double_submit_of_one_form_opens_one_checkout(app_ctx, client):
    data = form_data(client)

    first = client.post("/donate", data=data)
    second = client.post("/donate", data=data)

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert (count(CheckoutAttempt), count(SandboxObject)) == (1, 1)


def test_changed_form_with_the_same_token_is_a_new_gift(app_ctx, client):
    data = form_data(client)
    first = client.post("/donate", data=data)
    second = client.post("/donate", data={**data, "amount": "50.00"})

    assert first.headers["Location"] != second.headers["Location"]
    assert count(CheckoutAttempt) == 2


BAD_FIELDS = [
    ("amount", {"amount": "other", "custom_amount": "0"}, "more than zero"),
    ("amount", {"amount": "other", "custom_amount": "-5"}, "more than zero"),
    ("amount", {"amount": "other", "custom_amount": "0.49"}, "smallest gift is €0.50"),
    ("amount", {"amount": "other", "custom_amount": "10000.01"}, "largest gift"),
    ("amount", {"amount": "other", "custom_amount": "lots"}, "Enter an amount"),
    ("amount", {"amount": "other", "custom_amount": "1e30"}, "Enter an amount"),
    ("amount", {"amount": "other", "custom_amount": "10,000"}, "at most 2 decimals"),
    ("amount", {"amount": "other", "custom_amount": "25.001"}, "at most 2 decimals"),
    ("amount", {"amount": "other", "custom_amount": ""}, "Choose or enter an amount"),
    ("currency", {"currency": "XYZ"}, "Not a valid choice"),
    ("email", {"email": "not-an-email"}, "valid email"),
    ("email", {"email": "a@example.com\r\nBcc: victim@example.com"}, "valid email"),
    ("email", {"email": ""}, "Enter your email"),
    ("name", {"name": "x" * 10_000}, "at most 200"),
    ("name", {"name": "Ada\x00Reader"}, "not allowed"),
    ("campaign", {"campaign": "no-such-campaign"}, "Unknown campaign"),
    ("frequency", {"frequency": "weekly"}, "one_off, monthly or yearly"),
    ("article_url", {"article_url": "javascript:alert(1)"}, "http or https"),
]


@pytest.mark.parametrize("field,overrides,message", BAD_FIELDS, ids=[f"{f}-{m}" for f, _, m in BAD_FIELDS])
def test_bad_input_is_shown_next_to_its_field_and_nothing_is_started(app_ctx, client, field, overrides, message):
    response = client.post("/donate", data=form_data(client, **overrides))

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Please check the fields marked below" in html
    assert message.replace("€", "&euro;") in html or message in html
    assert (count(CheckoutAttempt), count(SandboxObject)) == (0, 0)


def test_form_without_csrf_token_is_refused(app_ctx, client):
    data = form_data(client)
    del data["csrf_token"]

    response = client.post("/donate", data=data)

    assert response.status_code == 400
    assert "form has expired" in response.get_data(as_text=True)
    assert count(CheckoutAttempt) == 0


def test_cancelled_checkout_returns_to_a_prefilled_form(app_ctx, client):
    client.post("/donate", data=form_data(client, amount="other", custom_amount="12.34"))
    attempt = db.session.scalars(select(CheckoutAttempt)).one()

    html = client.get(f"/donate?attempt={attempt.id}").get_data(as_text=True)

    assert 'value="12.34"' in html
    assert 'value="reader@example.com"' in html


def test_thank_you_page_of_an_unpaid_session_does_not_claim_payment(app_ctx, client):
    response = client.post("/donate", data=form_data(client))
    session_id = response.headers["Location"].rsplit("/", 1)[1]

    html = client.get(f"/thanks?session_id={session_id}").get_data(as_text=True)

    assert 'data-status="processing"' in html
    assert "We are confirming your payment" in html


def test_thank_you_page_of_an_unknown_session_is_404(client):
    assert client.get("/thanks?session_id=cs_nope").status_code == 404


def test_choosing_another_currency_shows_its_presets_and_charges_in_it(app_ctx, client):
    html = client.get("/donate?currency=GBP").get_data(as_text=True)

    assert "£25.00" in html and "€25.00" not in html
    assert hidden_value(html, "currency") == "GBP"
    response = client.post("/donate", data=form_data(client, currency="GBP"))
    assert response.status_code == 303
    assert db.session.scalars(select(CheckoutAttempt)).one().currency == "GBP"


def test_monthly_page_shows_monthly_presets_and_says_plainly_that_the_gift_repeats(client):
    html = client.get("/donate?frequency=monthly").get_data(as_text=True)

    assert hidden_value(html, "frequency") == "monthly"
    assert "€5.00" in html and "€20.00" in html and "€100.00" not in html  # its own presets, not one-off ×12
    assert "This gift repeats every month until you cancel" in html
    assert "Donate monthly" in html


def test_monthly_gift_opens_a_subscription_checkout(app_ctx, client):
    response = client.post("/donate", data=form_data(client, frequency="monthly", amount="10.00"))

    assert response.status_code == 303
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert (attempt.amount, attempt.frequency.value) == (1000, "monthly")
    session = db.session.get(SandboxObject, attempt.checkout_session_id).data
    assert (session["mode"], session["sandbox_interval"]) == ("subscription", "month")
    assert session["metadata"]["attempt_id"] == attempt.id


def test_cancelled_monthly_checkout_returns_to_the_monthly_form(app_ctx, client):
    client.post("/donate", data=form_data(client, frequency="monthly", amount="10.00"))
    attempt = db.session.scalars(select(CheckoutAttempt)).one()

    html = client.get(f"/donate?attempt={attempt.id}").get_data(as_text=True)

    assert hidden_value(html, "frequency") == "monthly"
    assert 'value="10.00" checked' in html


@pytest.mark.parametrize("query", ["_method=DELETE", "endpoint=x", "_scheme=x&_external=", "_external=1"])
def test_url_building_options_in_the_query_are_ignored(client, query):
    response = client.get(f"/donate?{query}&currency=GBP")

    assert response.status_code == 200
    assert 'href="/donate?' in response.get_data(as_text=True)


def test_the_same_form_after_the_gift_was_paid_opens_a_new_checkout(app_ctx, client):
    from donations.checkout.models import AttemptStatus

    data = form_data(client)
    first = client.post("/donate", data=data)
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    attempt.status = AttemptStatus.COMPLETED
    db.session.commit()

    second = client.post("/donate", data=data)

    assert second.status_code == 303
    assert second.headers["Location"] != first.headers["Location"]
    assert count(CheckoutAttempt) == 2


# -- a preset chosen and another amount typed (a reader without the page's script) --------------------------


def test_a_preset_and_a_different_typed_amount_reshow_the_form_asking_for_one_with_nothing_created(app_ctx, client):
    response = client.post("/donate", data=form_data(client, amount="25.00", custom_amount="7"))

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "also typed a different one under “Other amount”. Please choose one of them." in html
    # The message is the amount box's: the box names it for a screen reader and takes the focus.
    box = next(tag for tag in re.findall(r"<input[^>]*>", html) if 'name="custom_amount"' in tag)
    assert 'aria-describedby="amount-error"' in box and 'aria-invalid="true"' in box and "autofocus" in box
    assert 'id="amount-error"' in html
    assert 'value="7"' in box and 'value="25.00" checked' in html  # what they gave is still there to fix
    assert count(CheckoutAttempt) == 0 and count(SandboxObject) == 0  # no attempt, no checkout session


@pytest.mark.parametrize("typed", ["25", "25.00", " 25.0 "])
def test_the_preset_typed_again_as_the_other_amount_goes_through(app_ctx, client, typed):
    response = client.post("/donate", data=form_data(client, amount="25.00", custom_amount=typed))

    assert response.status_code == 303
    assert db.session.scalars(select(CheckoutAttempt)).one().amount == 2500


def test_other_with_a_typed_amount_charges_the_typed_amount(app_ctx, client):
    response = client.post("/donate", data=form_data(client, amount="other", custom_amount="7"))

    assert response.status_code == 303
    assert db.session.scalars(select(CheckoutAttempt)).one().amount == 700
