"""No mass assignment: the API and every form take only their declared fields; anything else a request brings
(ids, slugs, statuses, roles, timestamps, hashes) is refused (API) or ignored (forms), never written."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from donations.campaigns.models import Campaign, CampaignVariant
from donations.checkout.models import AttemptStatus, CheckoutAttempt
from donations.checkout.operations import API_FIELDS
from donations.extensions import db
from donations.payments.models import SandboxObject
from donations.staff.models import Role, StaffUser
from tests.functional.helpers import hidden_value
from tests.functional.test_staff_campaign_editor import settings_form, variant_form
from tests.staff_helpers import campaign_form, default_campaign_id, in_app, make_user, signed_in

API = {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
       "email": "reader@example.com"}
#: Columns of the attempt and the ledger that a caller must never set.
SMUGGLED = {"id": "a-chosen-id", "status": "paid", "covered_fee": 0, "gateway": "stripe",
            "checkout_session_id": "cs_live_evil", "checkout_url": "https://evil.example", "supporter_id": 1,
            "declines": 0, "ip_hash": "0" * 64, "created_at": "2020-01-01T00:00:00Z"}


def test_the_api_names_each_unknown_field_and_creates_nothing(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json={**API, **SMUGGLED})

    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert errors == {name: "Unknown field." for name in SMUGGLED}
    assert db.session.scalars(select(CheckoutAttempt)).first() is None
    assert db.session.scalars(select(SandboxObject)).first() is None


@pytest.mark.parametrize("name", ["__proto__", "constructor", "Amount", "amount ", "success_URL", ""])
def test_the_api_does_not_bend_field_names(app_ctx, client, name):
    response = client.post("/api/v1/checkout-sessions", json={**API, name: "x"})

    assert response.status_code == 400
    assert response.get_json()["errors"] == {name: "Unknown field."}


def test_the_openapi_document_declares_exactly_the_accepted_fields(client):
    schema = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/checkout-sessions"]["post"]
    body = schema["requestBody"]["content"]["application/json"]["schema"]

    assert set(body["properties"]) == API_FIELDS
    assert body["additionalProperties"] is False


def test_the_donation_form_ignores_fields_it_does_not_declare(app_ctx, client):
    html = client.get("/donate").get_data(as_text=True)
    form = {"csrf_token": hidden_value(html, "csrf_token"), "token": hidden_value(html, "token"),
            "campaign": "default", "amount": "25.00", "custom_amount": "", "currency": "EUR",
            "frequency": "one_off", "email": "reader@example.com", "name": "Ada Reader",
            **{k: str(v) for k, v in SMUGGLED.items()}}

    response = client.post("/donate", data=form)

    assert response.status_code == 303
    attempt = db.session.scalars(select(CheckoutAttempt)).one()
    assert attempt.id != "a-chosen-id"
    assert attempt.status is AttemptStatus.OPEN and attempt.gateway == "sandbox"
    assert attempt.checkout_session_id.startswith("cs_test_") and "evil" not in attempt.checkout_url
    assert attempt.created_at.replace(tzinfo=timezone.utc) > datetime(2025, 1, 1, tzinfo=timezone.utc)


def campaign_row(app, campaign_id: int) -> dict:
    with in_app(app):
        c = db.session.get(Campaign, campaign_id)
        return {"id": c.id, "slug": c.slug, "name": c.name, "active": c.active, "language": c.language,
                "default_currency": c.default_currency, "priority": c.priority}


def test_the_copy_form_writes_only_the_copy(client):
    staff = signed_in(client, "staff")
    campaign = default_campaign_id(client.application)
    before = campaign_row(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}", campaign_form(
        client.application, campaign, headline="New headline", id="999", slug="hijacked", name="Hijacked",
        active="", language="xx", default_currency="JPY", priority="99"))

    assert response.status_code == 303
    assert campaign_row(client.application, campaign) == before
    with in_app(client.application):
        assert db.session.get(Campaign, campaign).headline == "New headline"


def test_the_settings_form_does_not_change_the_slug_or_id(client):
    staff = signed_in(client, "staff")
    campaign = default_campaign_id(client.application)

    response = staff.post(f"/staff/campaigns/{campaign}/settings",
                          settings_form(slug="hijacked", id="999", default_currency="JPY", headline="Smuggled"))

    assert response.status_code == 303
    row = campaign_row(client.application, campaign)
    assert (row["id"], row["slug"], row["default_currency"]) == (campaign, "default", "EUR")
    with in_app(client.application):
        assert db.session.get(Campaign, campaign).headline != "Smuggled"


def test_a_saved_variant_keeps_its_key_and_campaign(client):
    staff = signed_in(client, "staff")
    campaign = default_campaign_id(client.application)
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form())
    with in_app(client.application):
        variant = db.session.scalars(select(CampaignVariant).where(
            CampaignVariant.campaign_id == campaign, CampaignVariant.key == "b")).one()
        variant_id = variant.id

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{variant_id}",
                          variant_form(key="zz", campaign_id="999", id="999", name="Renamed"))

    assert response.status_code == 303
    with in_app(client.application):
        variant = db.session.get(CampaignVariant, variant_id)
        assert (variant.key, variant.campaign_id, variant.name) == ("b", campaign, "Renamed")


def test_a_new_staff_user_gets_only_what_the_form_declares(client):
    admin = signed_in(client, "admin")

    response = admin.post("/staff/users", {"email": "new@example.org", "role": "accountant",
                                           "password": "a long enough password", "id": "1", "active": "0",
                                           "password_hash": "$argon2id$forged", "last_login_at": "2020-01-01",
                                           "created_at": "2020-01-01"})

    assert response.status_code == 303
    with in_app(client.application):
        user = db.session.scalars(select(StaffUser).where(StaffUser.email == "new@example.org")).one()
        assert (user.role, user.active, user.last_login_at) == (Role.ACCOUNTANT, True, None)
        assert user.password_hash.startswith("$argon2id$") and user.password_hash != "$argon2id$forged"
        assert user.created_at.replace(tzinfo=timezone.utc) > datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_changing_a_user_changes_only_role_and_status(client):
    admin = signed_in(client, "admin")
    colleague_id, email = make_user(client.application, "staff")
    with in_app(client.application):
        hash_before = db.session.get(StaffUser, colleague_id).password_hash

    response = admin.post(f"/staff/users/{colleague_id}", {"role": "accountant", "active": "1",
                                                            "email": "taken-over@evil.example",
                                                            "password_hash": "forged", "id": "1"})

    assert response.status_code == 303
    with in_app(client.application):
        user = db.session.get(StaffUser, colleague_id)
        assert (user.email, user.role, user.password_hash) == (email, Role.ACCOUNTANT, hash_before)
