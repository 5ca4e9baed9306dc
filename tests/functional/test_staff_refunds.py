"""Refunds from the staff area: through the gateway with an idempotency key from the form, booked when
``charge.refunded`` arrives (the sandbox delivers it at once), never twice."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, StripeEvent
from donations.payments.models import SandboxObject
from donations.staff.models import AuditEntry
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.functional.helpers import hidden_value
from tests.staff_helpers import audit_rows, in_app, ip_hash_for, new_token, sandbox_gift, signed_in, webhook_gift


@pytest.fixture
def gift(client) -> int:
    """A €25.00 gift paid through the sandbox checkout, so that its payment can be refunded."""
    return sandbox_gift(client.application, "25.00")


@pytest.fixture
def staff(client):
    return signed_in(client, "staff")


def refund_form(staff, donation_id: int) -> dict:
    html = staff.get(f"/staff/donations/{donation_id}").get_data(as_text=True)
    return {"csrf_token": hidden_value(html, "csrf_token"), "token": hidden_value(html, "token")}


def ask_to_refund(staff, donation_id: int, amount: str, form: dict | None = None):
    """The first step: the donation page's form, which only asks to confirm."""
    data = {**(form or refund_form(staff, donation_id)), "amount": amount}
    return staff.post(f"/staff/donations/{donation_id}/refund", data)


def confirmation_form(html: str) -> dict:
    """The hidden fields of the confirmation page's form, as the browser sends them."""
    return {name: hidden_value(html, name) for name in ("csrf_token", "token", "amount", "confirm")}


def refund(staff, donation_id: int, amount: str, form: dict | None = None):
    """Both steps, as a person does them: Refund on the donation page, then Refund on the confirmation page.
    A first step that is refused (not a 200 confirmation page) is the answer."""
    first = ask_to_refund(staff, donation_id, amount, form)
    if first.status_code != 200:
        return first
    return staff.post(f"/staff/donations/{donation_id}/refund", confirmation_form(first.get_data(as_text=True)))


def state(app, donation_id: int) -> dict:
    with in_app(app):
        d = db.session.get(Donation, donation_id)
        return {"status": d.status, "amount_refunded": d.amount_refunded, "refunded_at": d.refunded_at}


def sandbox_refunds(app) -> list[tuple[str | None, dict]]:
    with in_app(app):
        rows = db.session.scalars(select(SandboxObject).order_by(SandboxObject.created_at))
        return [(row.idempotency_key, row.data) for row in rows if row.data.get("object") == "refund"]


def refunded_events(app) -> list[dict]:
    with in_app(app):
        rows = db.session.scalars(select(StripeEvent).where(StripeEvent.type == "charge.refunded")
                                  .order_by(StripeEvent.created, StripeEvent.received_at))
        return [row.payload for row in rows]


def page(staff, donation_id: int) -> str:
    return staff.get(f"/staff/donations/{donation_id}").get_data(as_text=True)


def again(evt: dict, new_id: bool = True) -> dict:
    """The same event delivered again, under a new id (as a retried or re-sent event) or its own."""
    return {**evt, "id": f"evt_test_{secrets.token_hex(10)}"} if new_id else evt


# -- a partial refund ------------------------------------------------------------------------------

def test_refunding_half_asks_the_gateway_with_an_idempotency_key_from_the_form_token(client, gift, staff):
    form = refund_form(staff, gift)

    response = refund(staff, gift, "12.50", form)

    assert response.status_code == 303
    [(key, data)] = sandbox_refunds(client.application)
    assert key == f"donations-refund-{gift}-{form['token']}"
    assert data["amount"] == 1250 and data["currency"] == "eur"


def test_the_first_step_asks_nobody_and_shows_the_amount_the_gift_and_the_supporter_to_confirm(client, gift, staff):
    form = refund_form(staff, gift)

    response = ask_to_refund(staff, gift, "12.50", form)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert ("Refund €12.50 of €25.00 to reader@example.com? The money goes back to their card; "
            "this cannot be undone.") in html
    assert ">Refund €12.50</button>" in html
    assert f'href="/staff/donations/{gift}"' in html  # the way back without refunding
    assert confirmation_form(html) == {"csrf_token": form["csrf_token"], "token": form["token"], "amount": "12.50",
                                       "confirm": "1"}
    assert sandbox_refunds(client.application) == []
    assert refunded_events(client.application) == []
    assert state(client.application, gift)["status"] is DonationStatus.SUCCEEDED
    assert audit_rows(client.application, AuditEntry.action == "donation.refund") == []


def test_confirming_refunds_once_and_says_so(client, gift, staff):
    form = refund_form(staff, gift)
    confirmation = ask_to_refund(staff, gift, "12.50", form).get_data(as_text=True)

    response = staff.post(f"/staff/donations/{gift}/refund", confirmation_form(confirmation))

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/staff/donations/{gift}")
    [(key, data)] = sandbox_refunds(client.application)
    assert key == f"donations-refund-{gift}-{form['token']}" and data["amount"] == 1250
    assert state(client.application, gift)["amount_refunded"] == 1250
    assert "Refund requested." in page(staff, gift)
    assert len(audit_rows(client.application, AuditEntry.action == "donation.refund")) == 1


def test_a_confirmation_submitted_twice_refunds_once(client, gift, staff):
    confirmation = confirmation_form(ask_to_refund(staff, gift, "12.50").get_data(as_text=True))

    staff.post(f"/staff/donations/{gift}/refund", confirmation)
    staff.post(f"/staff/donations/{gift}/refund", confirmation)

    assert len(sandbox_refunds(client.application)) == 1
    assert state(client.application, gift)["amount_refunded"] == 1250
    assert len(audit_rows(client.application, AuditEntry.action == "donation.refund")) == 1


def test_a_forged_confirmation_for_more_than_is_left_is_refused_with_nothing_done(client, gift, staff):
    confirmation = confirmation_form(ask_to_refund(staff, gift, "12.50").get_data(as_text=True))

    response = staff.post(f"/staff/donations/{gift}/refund", {**confirmation, "amount": "30.00"})

    assert response.status_code == 303
    assert "At most €25.00 is left to refund." in page(staff, gift)
    assert sandbox_refunds(client.application) == []
    assert state(client.application, gift)["status"] is DonationStatus.SUCCEEDED
    assert audit_rows(client.application, AuditEntry.action == "donation.refund") == []


def test_an_amount_over_what_is_left_is_refused_at_the_first_step_without_a_confirmation(client, gift, staff):
    response = ask_to_refund(staff, gift, "30.00")

    assert response.status_code == 303
    assert "At most €25.00 is left to refund." in page(staff, gift)
    assert sandbox_refunds(client.application) == []


def test_half_refunded_gift_shows_partially_refunded_with_the_amount_once_stripe_confirms(client, gift, staff):
    refund(staff, gift, "12.50")

    assert state(client.application, gift)["status"] is DonationStatus.PARTIALLY_REFUNDED
    assert state(client.application, gift)["amount_refunded"] == 1250
    [evt] = refunded_events(client.application)
    assert evt["data"]["object"]["amount_refunded"] == 1250
    html = page(staff, gift)
    assert 'data-status="partially_refunded"' in html
    assert '<td id="refunded">€12.50</td>' in html
    assert "at most €12.50" in html  # what is left to refund


def test_the_same_refund_form_submitted_twice_refunds_once(client, gift, staff):
    form = refund_form(staff, gift)

    first = refund(staff, gift, "12.50", form)
    second = refund(staff, gift, "12.50", form)

    assert first.status_code == second.status_code == 303
    assert len(sandbox_refunds(client.application)) == 1
    assert len(refunded_events(client.application)) == 1
    assert state(client.application, gift)["amount_refunded"] == 1250
    assert state(client.application, gift)["status"] is DonationStatus.PARTIALLY_REFUNDED


def test_two_forms_make_two_refunds_that_add_up(client, gift, staff):
    refund(staff, gift, "10.00")
    refund(staff, gift, "15.00")

    assert [data["amount"] for _, data in sandbox_refunds(client.application)] == [1000, 1500]
    assert state(client.application, gift)["amount_refunded"] == 2500
    assert state(client.application, gift)["status"] is DonationStatus.REFUNDED


# -- refusals --------------------------------------------------------------------------------------

def test_refunding_more_than_the_gift_is_refused_with_a_clear_message(client, gift, staff):
    response = refund(staff, gift, "30.00")

    assert response.status_code == 303
    assert "At most €25.00 is left to refund." in page(staff, gift)
    assert sandbox_refunds(client.application) == []
    assert state(client.application, gift)["status"] is DonationStatus.SUCCEEDED
    assert audit_rows(client.application, AuditEntry.action == "donation.refund") == []


def test_refunding_more_than_what_is_left_is_refused_with_a_clear_message(client, gift, staff):
    refund(staff, gift, "20.00")

    refund(staff, gift, "10.00")

    assert "At most €5.00 is left to refund." in page(staff, gift)
    assert len(sandbox_refunds(client.application)) == 1
    assert state(client.application, gift)["amount_refunded"] == 2000


@pytest.mark.parametrize("amount, message", [
    ("0", "Enter an amount more than zero."),
    ("-5", "Enter an amount more than zero."),
    ("abc", "Enter an amount such as 25 or 25.50."),
    ("1.234", "EUR amounts have at most 2 decimals."),
    ("", "Enter an amount."),
])
def test_an_amount_that_is_not_a_refund_is_refused(client, gift, staff, amount, message):
    refund(staff, gift, amount)

    assert message in page(staff, gift)
    assert sandbox_refunds(client.application) == []


def test_a_refund_form_without_its_token_is_refused(client, gift, staff):
    form = refund_form(staff, gift)
    form["token"] = "not-a-uuid"

    refund(staff, gift, "5.00", form)

    assert "This form has expired; reload the page." in page(staff, gift)
    assert sandbox_refunds(client.application) == []


def test_a_refunded_gift_cannot_be_refunded_again(client, gift, staff):
    refund(staff, gift, "25.00")

    refund(staff, gift, "1.00", {"csrf_token": staff.csrf, "token": new_token()})

    assert "A refunded donation cannot be refunded." in page(staff, gift)
    assert len(sandbox_refunds(client.application)) == 1


def test_a_gift_that_was_never_paid_cannot_be_refunded(client, staff):
    with in_app(client.application):
        attempt = make_attempt()
        db.session.commit()
        session = checkout_session(attempt, payment_status="unpaid")
    post_event(client, event("checkout.session.completed", session))
    with in_app(client.application):
        pending = db.session.scalars(select(Donation.id)).one()

    refund(staff, pending, "1.00", {"csrf_token": staff.csrf, "token": new_token()})

    assert "A pending donation cannot be refunded." in page(staff, pending)
    assert sandbox_refunds(client.application) == []


# -- charge.refunded, repeated or out of order ----------------------------------------------------

def test_the_same_charge_refunded_event_delivered_again_changes_nothing(client, gift, staff):
    refund(staff, gift, "12.50")
    before = state(client.application, gift)
    [evt] = refunded_events(client.application)

    assert post_event(client, again(evt, new_id=False)).get_json()["outcome"] == "duplicate"
    assert post_event(client, again(evt)).status_code == 200  # a re-sent copy under a new id

    assert state(client.application, gift) == before


def test_an_older_charge_refunded_with_a_smaller_amount_changes_nothing(client, gift, staff):
    refund(staff, gift, "10.00")
    refund(staff, gift, "5.00")
    first, second = refunded_events(client.application)
    assert (first["data"]["object"]["amount_refunded"], second["data"]["object"]["amount_refunded"]) == (1000, 1500)
    before = state(client.application, gift)

    post_event(client, again(first))  # the older total arrives late

    assert state(client.application, gift) == before
    assert before["amount_refunded"] == 1500 and before["status"] is DonationStatus.PARTIALLY_REFUNDED


# -- a full refund -------------------------------------------------------------------------------

def test_full_refund_marks_the_gift_refunded_and_offers_no_more_refunds(client, gift, staff):
    response = refund(staff, gift, "25.00")

    assert response.status_code == 303
    assert state(client.application, gift)["status"] is DonationStatus.REFUNDED
    assert state(client.application, gift)["amount_refunded"] == 2500
    html = page(staff, gift)
    assert 'data-status="refunded"' in html
    assert f'action="/staff/donations/{gift}/refund"' not in html


def test_refund_of_a_monthly_payment_goes_through_the_gateway_too(client, staff):
    monthly = sandbox_gift(client.application, "10.00", email="monthly@example.com", frequency="monthly")

    refund(staff, monthly, "10.00")

    assert state(client.application, monthly)["status"] is DonationStatus.REFUNDED


def test_a_gift_the_gateway_does_not_know_shows_the_gateways_message(client, staff):
    unknown = webhook_gift(client)  # a pi_test_… that the sandbox never made

    refund(staff, unknown, "5.00", {"csrf_token": staff.csrf, "token": new_token()})

    assert "This payment cannot be refunded." in page(staff, unknown)
    assert state(client.application, unknown)["status"] is DonationStatus.SUCCEEDED


# -- who may refund ----------------------------------------------------------------------------------

def test_accountant_cannot_refund_and_sees_no_refund_form(client, gift):
    accountant = signed_in(client, "accountant")
    html = page(accountant, gift)

    assert f'action="/staff/donations/{gift}/refund"' not in html
    assert 'name="token"' not in html
    for step in ({}, {"confirm": "1"}):  # neither the first step nor the confirmation
        response = accountant.post(f"/staff/donations/{gift}/refund",
                                   {"csrf_token": accountant.csrf, "amount": "25.00", "token": new_token(), **step})
        assert response.status_code == 403
    assert sandbox_refunds(client.application) == []
    assert state(client.application, gift)["status"] is DonationStatus.SUCCEEDED


@pytest.mark.parametrize("role", ["admin", "staff"])
def test_admin_and_staff_see_the_refund_form(client, gift, role):
    html = page(signed_in(client, role), gift)
    assert f'action="/staff/donations/{gift}/refund"' in html


def test_refund_is_audited_with_amount_and_currency(client, gift, staff):
    refund(staff, gift, "12.50")

    [entry] = audit_rows(client.application, AuditEntry.action == "donation.refund")
    assert (entry["actor_id"], entry["object_type"], entry["object_id"]) == (staff.id, "donation", str(gift))
    assert (entry["detail"]["amount"], entry["detail"]["currency"]) == (1250, "EUR")
    assert entry["ip_hash"] == ip_hash_for(client.application, "127.0.0.1")


def test_a_double_submitted_refund_is_audited_once(client, gift, staff):
    form = refund_form(staff, gift)
    refund(staff, gift, "12.50", form)
    refund(staff, gift, "12.50", form)

    assert len(audit_rows(client.application, AuditEntry.action == "donation.refund")) == 1
