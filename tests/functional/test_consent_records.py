"""Consent to news and mailings is recorded with its date, wording and source, given and withdrawn; the
supporters export includes only supporters whose consent stands."""
from __future__ import annotations

from sqlalchemy import select

from donations.checkout.models import CheckoutAttempt
from donations.checkout.operations import MAILING_CONSENT_TEXT
from donations.extensions import db
from donations.ledger.models import ConsentRecord, Supporter
from donations.security import privacy
from tests.factories import checkout_session, event, post_event
from tests.functional.helpers import hidden_value
from tests.functional.test_account import EMAIL, account
from tests.functional.test_api import VALID
from tests.functional.test_mailing_consent import give
from tests.functional.test_supporters_export import csv_rows, export, recent_range


def history(email: str = EMAIL) -> list[tuple[str, str, str]]:
    person = db.session.scalars(select(Supporter).where(Supporter.email == email)).one()
    return [(c.action, c.wording, c.source) for c in db.session.scalars(
        select(ConsentRecord).where(ConsentRecord.supporter_id == person.id).order_by(ConsentRecord.id))]


def withdraw(client, email: str = EMAIL) -> None:
    path = account(email)
    page = client.get(path).get_data(as_text=True)
    assert client.post(f"{path}/mailing-consent/withdraw",
                       data={"csrf_token": hidden_value(page, "csrf_token")}).status_code == 303


def test_a_tick_on_the_form_records_the_words_the_source_and_the_time(app_ctx, client):
    give(client, consent=True)

    [record] = db.session.scalars(select(ConsentRecord)).all()
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert (record.action, record.wording, record.source) == ("given", MAILING_CONSENT_TEXT, "donation form")
    assert record.at.replace(tzinfo=None) == attempt.created_at.replace(tzinfo=None)


def test_no_tick_records_nothing(app_ctx, client):
    give(client, consent=False)

    assert db.session.scalars(select(ConsentRecord)).all() == []


def test_consent_through_the_api_is_recorded_with_its_source(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json={**VALID, "email": EMAIL, "mailing_consent": True})
    assert response.status_code == 201
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert post_event(client, event("checkout.session.completed", checkout_session(attempt))).status_code == 200

    assert history() == [("given", "mailing_consent = true", "API")]


def test_withdrawal_and_a_new_tick_each_add_to_the_history(app_ctx, client):
    give(client, consent=True)
    give(client, consent=True, amount="12.00")  # consent already stands: nothing new to record
    withdraw(client)
    give(client, consent=True, amount="15.00")

    assert history() == [("given", MAILING_CONSENT_TEXT, "donation form"),
                         ("withdrawn", "Stop these emails", "account page"),
                         ("given", MAILING_CONSENT_TEXT, "donation form")]


def test_the_supporters_export_has_only_those_whose_consent_stands(app_ctx, client):
    give(client, consent=True, email="stays@example.com")
    give(client, consent=True, email="withdrew@example.com")
    give(client, consent=True, email="erased@example.com")
    give(client, consent=False, email="never@example.com")
    withdraw(client, "withdrew@example.com")
    privacy.erase(db.session.scalars(select(Supporter).where(Supporter.email == "erased@example.com")).one(),
                  requested_by="supporter")
    db.session.commit()

    rows = csv_rows(export(app_ctx, *recent_range()))

    assert [row["email"] for row in rows] == ["stays@example.com"]
    # The withdrawal and the erasure are in the history all the same.
    assert history("withdrew@example.com")[-1][0] == "withdrawn"
    erased = db.session.scalars(select(Supporter).where(Supporter.email.like("erased-%@invalid"))).one()
    assert [c.action for c in db.session.scalars(select(ConsentRecord).where(
        ConsentRecord.supporter_id == erased.id).order_by(ConsentRecord.id))] == ["given", "withdrawn"]
