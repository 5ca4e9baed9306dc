"""CSRF: every state-changing staff POST needs the form's token; nothing changes on GET."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from donations.campaigns.models import Campaign
from donations.extensions import db
from donations.ledger.models import Donation, RecurringDonation, StripeEvent
from donations.mail.models import OutboxEmail
from donations.payments.models import SandboxObject
from donations.staff.models import AuditEntry, StaffSession, StaffUser
from tests.staff_helpers import (
    PASSWORD,
    campaign_form,
    default_campaign_id,
    in_app,
    make_user,
    new_token,
    sandbox_gift,
    signed_in,
)


@pytest.fixture
def world(client) -> dict:
    """A refundable one-off gift, a cancellable monthly gift, another staff user, an admin signed in."""
    app = client.application
    donation = sandbox_gift(app, "25.00", email="once@example.com")
    monthly = sandbox_gift(app, "10.00", email="monthly@example.com", frequency="monthly")
    with in_app(app):
        once, payment = db.session.get(Donation, donation), db.session.get(Donation, monthly)
        ids = {"supporter": once.supporter_id, "donation": donation, "monthly_supporter": payment.supporter_id,
               "recurring": payment.recurring_donation_id}
    ids["campaign"] = default_campaign_id(app)
    ids["user"] = make_user(app, "staff", "target@example.org")[0]
    ids["admin"] = signed_in(client, "admin")
    return ids


def post_for(name: str, w: dict, app) -> tuple[str, dict]:
    """Each state-changing staff POST with a form that would change something if it had its token."""
    return {
        "sign in": lambda: ("/staff/login", {"email": w["admin"].email, "password": PASSWORD}),
        "sign out": lambda: ("/staff/logout", {}),
        "resend receipt": lambda: (f"/staff/supporters/{w['supporter']}/donations/{w['donation']}/resend", {}),
        "cancel recurring": lambda: (f"/staff/supporters/{w['monthly_supporter']}/recurring/{w['recurring']}/cancel",
                                     {"when": "now"}),
        "ask to refund": lambda: (f"/staff/donations/{w['donation']}/refund", {"amount": "5.00", "token": new_token()}),
        "refund": lambda: (f"/staff/donations/{w['donation']}/refund",
                           {"amount": "5.00", "token": new_token(), "confirm": "1"}),
        "save campaign": lambda: (f"/staff/campaigns/{w['campaign']}",
                                  campaign_form(app, w["campaign"], headline="Changed")),
        "preview campaign": lambda: (f"/staff/campaigns/{w['campaign']}",
                                     campaign_form(app, w["campaign"], headline="Changed", action="preview")),
        "create user": lambda: ("/staff/users", {"email": "new@example.org", "role": "staff", "password": "a" * 16}),
        "change user": lambda: (f"/staff/users/{w['user']}", {"role": "accountant", "active": "0"}),
    }[name]()


CHANGING = ["sign in", "sign out", "resend receipt", "cancel recurring", "refund", "save campaign", "create user",
            "change user"]
POSTS = CHANGING + ["preview campaign", "ask to refund"]


def snapshot(app) -> dict:
    """Everything a staff POST could change."""
    with in_app(app):
        def n(model, *where):
            return db.session.scalar(select(func.count()).select_from(model).where(*where))

        return {
            "counts": {m.__tablename__: n(m) for m in (AuditEntry, OutboxEmail, StaffUser, SandboxObject, StripeEvent,
                                                        Donation, RecurringDonation)},
            "open sessions": n(StaffSession, StaffSession.ended_at.is_(None)),
            "users": sorted((u.id, u.role.value, u.active) for u in db.session.scalars(select(StaffUser))),
            "donations": sorted((d.id, d.status.value, d.amount_refunded) for d in db.session.scalars(select(Donation))),
            "recurring": sorted((r.id, r.status.value, r.cancel_at_period_end)
                                for r in db.session.scalars(select(RecurringDonation))),
            "campaigns": sorted((c.id, c.headline, c.body, c.button_label, c.thank_you, c.default_frequency.value,
                                 json.dumps(c.presets, sort_keys=True)) for c in db.session.scalars(select(Campaign))),
        }


@pytest.mark.parametrize("name", POSTS)
def test_staff_post_without_csrf_token_is_400_and_changes_nothing(client, world, name):
    path, form = post_for(name, world, client.application)
    before = snapshot(client.application)

    response = world["admin"].post(path, form, csrf=False)

    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert snapshot(client.application) == before


@pytest.mark.parametrize("name", POSTS)
def test_staff_post_with_another_browsers_csrf_token_is_400_and_changes_nothing(client, world, name):
    path, form = post_for(name, world, client.application)
    other = signed_in(client.application.test_client(), "admin")
    before = snapshot(client.application)

    response = world["admin"].post(path, {**form, "csrf_token": other.csrf})

    assert response.status_code == 400
    assert snapshot(client.application) == before


@pytest.mark.parametrize("name", CHANGING)
def test_the_same_post_with_its_csrf_token_does_change_something(client, world, name):
    """The control for the two tests above: the forms they send are otherwise good."""
    path, form = post_for(name, world, client.application)
    before = snapshot(client.application)

    response = world["admin"].post(path, form)

    assert response.status_code == 303
    assert snapshot(client.application) != before


@pytest.mark.parametrize("name", ["preview campaign", "ask to refund"])
def test_a_preview_or_a_confirmation_page_with_its_csrf_token_changes_nothing(client, world, name):
    path, form = post_for(name, world, client.application)
    before = snapshot(client.application)

    response = world["admin"].post(path, form)

    assert response.status_code == 200
    assert snapshot(client.application) == before


@pytest.mark.parametrize("name", ["sign out", "resend receipt", "cancel recurring", "refund", "change user"])
def test_get_on_a_post_only_route_is_405_and_changes_nothing(client, world, name):
    path, form = post_for(name, world, client.application)
    before = snapshot(client.application)

    response = world["admin"].get(path, query_string=form)

    assert response.status_code == 405
    assert snapshot(client.application) == before


@pytest.mark.parametrize("path", ["/staff/campaigns/{campaign}", "/staff/users", "/staff/login"])
def test_get_on_a_route_that_also_takes_post_changes_nothing(client, world, path):
    path = path.format(**world)
    before = snapshot(client.application)

    response = world["admin"].get(path, query_string={"headline": "Changed", "email": "new@example.org",
                                                      "role": "admin", "password": "a" * 16, "action": "save"})

    assert response.status_code == 200
    assert snapshot(client.application) == before
