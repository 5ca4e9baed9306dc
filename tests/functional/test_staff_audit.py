"""The audit log: who did what to which object, from where; append-only; no route changes it."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from donations.extensions import db
from donations.ledger.models import Donation, RecurringDonation, RecurringStatus
from donations.staff.auth import audit, find_user
from donations.staff.models import AuditEntry, AuditLogIsAppendOnly
from tests.functional.helpers import hidden_value
from tests.staff_helpers import (
    ip_hash_for,
    audit_rows,
    campaign_form,
    default_campaign_id,
    in_app,
    make_user,
    sandbox_gift,
    sign_in,
    signed_in,
    user_state,
    webhook_gift,
)

IP = "203.0.113.7"


@pytest.fixture
def admin(client):
    client.environ_base["REMOTE_ADDR"] = IP
    return signed_in(client, "admin")


def only(app, action: str) -> dict:
    [entry] = audit_rows(app, AuditEntry.action == action)
    return entry


def assert_by(entry: dict, staff, object_type: str, object_id, app) -> None:
    assert (entry["actor_id"], entry["actor_email"]) == (staff.id, staff.email)
    assert (entry["object_type"], entry["object_id"]) == (object_type, str(object_id))
    assert entry["outcome"] == "ok"
    assert entry["ip_hash"] == ip_hash_for(app, IP) and IP not in entry["ip_hash"]


# -- every staff action writes an entry -----------------------------------------------------------

def test_sign_in_is_audited(client, admin):
    assert_by(only(client.application, "sign_in"), admin, "staff_user", admin.id, client.application)


def test_sign_out_is_audited(client, admin):
    admin.post("/staff/logout")

    assert_by(only(client.application, "sign_out"), admin, "staff_user", admin.id, client.application)


def test_refund_is_audited(client, admin):
    gift = sandbox_gift(client.application, "25.00")
    html = admin.get(f"/staff/donations/{gift}").get_data(as_text=True)

    form = {"amount": "5.00", "token": hidden_value(html, "token")}
    assert admin.post(f"/staff/donations/{gift}/refund", form).status_code == 200  # the confirmation: no entry
    assert audit_rows(client.application, AuditEntry.action == "donation.refund") == []
    admin.post(f"/staff/donations/{gift}/refund", {**form, "confirm": "1"})

    entry = only(client.application, "donation.refund")
    assert_by(entry, admin, "donation", gift, client.application)
    assert (entry["detail"]["amount"], entry["detail"]["currency"]) == (500, "EUR")


def test_cancelling_a_recurring_gift_is_audited(client, admin):
    payment = sandbox_gift(client.application, "10.00", email="monthly@example.com", frequency="monthly")
    with in_app(client.application):
        gift = db.session.get(Donation, payment)
        supporter, recurring = gift.supporter_id, gift.recurring_donation_id

    response = admin.post(f"/staff/supporters/{supporter}/recurring/{recurring}/cancel", {"when": "now"})

    assert response.status_code == 303
    with in_app(client.application):
        assert db.session.get(RecurringDonation, recurring).status is RecurringStatus.CANCELED
    entry = only(client.application, "recurring.cancel")
    assert_by(entry, admin, "recurring_donation", recurring, client.application)
    assert entry["detail"] == {"when": "now"}


def test_resending_a_receipt_is_audited(client, admin):
    gift = webhook_gift(client, email="reader@example.com")
    with in_app(client.application):
        supporter = db.session.get(Donation, gift).supporter_id

    admin.post(f"/staff/supporters/{supporter}/donations/{gift}/resend")

    entry = only(client.application, "receipt.resend")
    assert_by(entry, admin, "donation", gift, client.application)
    assert entry["detail"] == {"to": "reader@example.com"}


def test_campaign_edit_is_audited(client, admin):
    campaign = default_campaign_id(client.application)

    admin.post(f"/staff/campaigns/{campaign}", campaign_form(client.application, campaign, headline="New"))

    entry = only(client.application, "campaign.edit")
    assert_by(entry, admin, "campaign", campaign, client.application)
    assert entry["detail"]["changed"]["headline"]["to"] == "New"


def test_user_change_is_audited(client, admin):
    user_id, _ = make_user(client.application, "staff")

    admin.post(f"/staff/users/{user_id}", {"role": "accountant", "active": "0"})

    entry = only(client.application, "user.change")
    assert_by(entry, admin, "staff_user", user_id, client.application)
    assert entry["detail"] == {"role": {"from": "staff", "to": "accountant"}, "active": {"from": True, "to": False}}


def test_a_save_that_changes_nothing_about_a_user_writes_no_entry(client, admin):
    user_id, _ = make_user(client.application, "staff")

    admin.post(f"/staff/users/{user_id}", {"role": "staff", "active": "1"})

    assert audit_rows(client.application, AuditEntry.action == "user.change") == []


def test_user_create_is_audited(client, admin):
    response = admin.post("/staff/users", {"email": "New.Person@Example.org", "role": "accountant",
                                           "password": "a long enough password"})

    assert response.status_code == 303
    entry = only(client.application, "user.create")
    with in_app(client.application):
        new = find_user("new.person@example.org")
        assert new.role.value == "accountant" and new.password_hash.startswith("$argon2id$")
        assert_by(entry, admin, "staff_user", new.id, client.application)
    assert entry["detail"] == {"email": "new.person@example.org", "role": "accountant"}
    assert sign_in(client.application.test_client(), "new.person@example.org",
                   "a long enough password").status_code == 303


def test_creating_a_user_with_a_short_password_or_a_taken_address_is_refused(client, admin):
    short = admin.post("/staff/users", {"email": "new@example.org", "role": "staff", "password": "short"})
    taken = admin.post("/staff/users", {"email": admin.email.upper(), "role": "staff", "password": "a" * 16})

    assert short.status_code == taken.status_code == 400
    assert "Use at least 12 characters." in short.get_data(as_text=True)
    assert "A staff user with this address exists." in taken.get_data(as_text=True)
    assert audit_rows(client.application, AuditEntry.action == "user.create") == []


def test_a_denied_request_is_audited_with_who_and_where(client):
    client.environ_base["REMOTE_ADDR"] = IP
    accountant = signed_in(client, "accountant")

    accountant.get("/staff/users")

    [entry] = audit_rows(client.application, AuditEntry.outcome == "denied")
    assert (entry["actor_id"], entry["ip_hash"], entry["detail"]["path"]) == (
        accountant.id, ip_hash_for(client.application, IP), "/staff/users")


# -- the log page ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["admin", "staff", "accountant"])
def test_every_role_can_read_the_audit_page(client, role):
    staff = signed_in(client, role)

    html = staff.get("/staff/audit").get_data(as_text=True)

    assert staff.email in html and "sign_in" in html
    assert html.count('<tr data-outcome="ok">') == 1


def test_the_audit_page_pages_back_with_a_keyset_link(client, admin):
    with in_app(client.application):
        for n in range(60):
            audit("test.entry", "thing", n, actor=None, email="script")
        db.session.commit()

    first = admin.get("/staff/audit").get_data(as_text=True)
    assert first.count("<tr data-outcome=") == 50
    link = first.split('<a href="')[-1].split('">Older entries')[0].replace("&amp;", "&")
    second = admin.get(link).get_data(as_text=True)
    assert second.count("<tr data-outcome=") == 61 - 50  # 60 + the sign-in


# -- append-only ----------------------------------------------------------------------------------

@pytest.fixture
def entry_id(client, admin) -> int:
    with in_app(client.application):
        return db.session.scalars(select(AuditEntry.id)).one()


def test_an_audit_entry_cannot_be_updated_through_the_orm(client, entry_id):
    with in_app(client.application):
        entry = db.session.get(AuditEntry, entry_id)
        entry.action = "nothing.happened"
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.flush()
        db.session.rollback()
    assert audit_rows(client.application)[0]["action"] == "sign_in"


def test_an_audit_entry_cannot_be_deleted_through_the_orm(client, entry_id):
    with in_app(client.application):
        db.session.delete(db.session.get(AuditEntry, entry_id))
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.flush()
        db.session.rollback()
    assert len(audit_rows(client.application)) == 1


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_audit_entries_cannot_be_changed_by_an_orm_bulk_statement(client, entry_id, statement):
    stmt = (update(AuditEntry).values(action="nothing.happened") if statement == "update" else delete(AuditEntry))
    with in_app(client.application):
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.execute(stmt)
        db.session.rollback()


def test_no_route_changes_the_audit_log(app):
    for rule in app.url_map.iter_rules():
        if "audit" in rule.rule or "audit" in rule.endpoint:
            assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule
    assert [r.rule for r in app.url_map.iter_rules() if "audit" in r.endpoint] == ["/staff/audit"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writing_to_the_audit_page_is_405(client, admin, method):
    response = getattr(client, method)("/staff/audit", data={"csrf_token": admin.csrf})

    assert response.status_code == 405
    assert len(audit_rows(client.application)) == 1


def test_audit_entries_keep_the_actors_address_after_a_change(client, admin):
    user_id, email = make_user(client.application, "staff", "was@example.org")
    sign_in(client.application.test_client(), email)
    admin.post(f"/staff/users/{user_id}", {"role": "staff", "active": "0"})

    assert user_state(client.application, user_id) == ("staff", False)
    assert [e["actor_email"] for e in audit_rows(client.application, AuditEntry.actor_id == user_id)] == [email]
