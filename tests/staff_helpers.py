"""Shared helpers for the staff-area tests: users signed in through the real form, gifts made through
the real intake paths, and small readers of the database.

The staff tests make their requests with no app context of their own pushed, so that every request
gets a fresh app context (a fresh ``g`` and a fresh database session) as it does in production;
setup and assertions open an app context of their own with :func:`in_app`. (Inside one shared app
context Flask-Login would carry ``g._login_user`` from one request, or one browser, to the next.)
"""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from donations.campaigns.models import Campaign
from donations.extensions import db
from donations.ledger.models import Donation, Frequency, Supporter
from donations.money import Money
from donations.staff.auth import create_user
from donations.staff.models import AuditEntry, Role, StaffSession, StaffUser
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.functional.helpers import hidden_value

PASSWORD = "correct horse battery staple"
COOKIE = "session"


@contextmanager
def in_app(app: Flask) -> Iterator:
    """An app context of its own, with its own database session, for setup and checks."""
    with app.app_context():
        yield db.session


# -- staff users ---------------------------------------------------------------------------------

def make_user(app: Flask, role: str | Role, email: str | None = None, password: str = PASSWORD,
              active: bool = True) -> tuple[int, str]:
    """A staff user made through donations.staff.auth.create_user; returns (id, email)."""
    role = Role(role)
    with in_app(app):
        user = create_user(email or f"{role.value}-{secrets.token_hex(4)}@example.org", role, password)
        user.active = active
        db.session.commit()
        return user.id, user.email


def login_csrf(client: FlaskClient) -> str:
    return hidden_value(client.get("/staff/login").get_data(as_text=True), "csrf_token")


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD):
    """POST the sign-in form as a browser would (with the CSRF token from the page)."""
    return client.post("/staff/login", data={"csrf_token": login_csrf(client), "email": email,
                                             "password": password})


@dataclass
class Staff:
    """A browser signed in as one staff user."""

    client: FlaskClient
    id: int
    email: str
    role: Role
    csrf: str

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=form, **kwargs)


def page_csrf(client: FlaskClient) -> str:
    """The CSRF token of a signed-in page (the sign-out form in the staff navigation carries it)."""
    return hidden_value(client.get("/staff/campaigns").get_data(as_text=True), "csrf_token")


def signed_in(client: FlaskClient, role: str | Role, email: str | None = None,
              password: str = PASSWORD) -> Staff:
    """Create a user with ``role`` and sign ``client`` in through the real form."""
    user_id, email = make_user(client.application, role, email, password)
    response = sign_in(client, email, password)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert urlsplit(response.headers["Location"]).path == "/staff/"
    return Staff(client, user_id, email, Role(role), page_csrf(client))


def session_value(client: FlaskClient, key: str):
    with client.session_transaction() as sess:
        return sess.get(key)


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value


def browser_with_cookie(app: Flask, value: str) -> FlaskClient:
    """A fresh browser that sends a copied session cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    return other


def is_sign_in_redirect(response) -> bool:
    return response.status_code in (302, 303) and urlsplit(response.headers["Location"]).path == "/staff/login"


def move_session_back(app: Flask, sid: str, *, last_seen: timedelta | None = None,
                      created: timedelta | None = None) -> None:
    with in_app(app):
        row = db.session.get(StaffSession, sid)
        if last_seen is not None:
            row.last_seen_at = row.last_seen_at - last_seen
        if created is not None:
            row.created_at = row.created_at - created
        db.session.commit()


# -- gifts ---------------------------------------------------------------------------------------

def webhook_gift(client: FlaskClient, amount: int = 2500, currency: str = "EUR",
                 email: str = "reader@example.com", name: str | None = "Ada Reader", **session_kwargs) -> int:
    """A paid one-off gift booked through the real webhook intake; returns the donation's id."""
    app = client.application
    with in_app(app):
        attempt = make_attempt(amount=amount, currency=currency, email=email, name=name)
        db.session.commit()
        session = checkout_session(attempt, **session_kwargs)
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    with in_app(app):
        return db.session.scalars(select(Donation.id).where(
            Donation.stripe_checkout_session_id == session["id"])).one()


def sandbox_gift(app: Flask, amount: str = "25.00", email: str = "reader@example.com",
                 frequency: str = "one_off", currency: str = "EUR") -> int:
    """A gift paid through the sandbox checkout with 4242…, by a reader in a browser of their own;
    its payment intent exists in the sandbox, so it can be refunded. Returns the donation's id."""
    reader = app.test_client()
    html = reader.get("/donate").get_data(as_text=True)
    form = {"csrf_token": hidden_value(html, "csrf_token"), "token": hidden_value(html, "token"),
            "campaign": "default", "amount": amount, "custom_amount": "", "currency": currency,
            "frequency": frequency, "email": email, "name": "Ada Reader",
            "article_url": "https://publisher.example/news/1"}
    response = reader.post("/donate", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    path = urlsplit(response.headers["Location"]).path
    html = reader.get(path).get_data(as_text=True)
    paid = reader.post(path, data={"csrf_token": hidden_value(html, "csrf_token"),
                                   "card_number": "4242424242424242"})
    assert paid.status_code == 303, paid.get_data(as_text=True)
    with in_app(app):
        return db.session.scalars(select(Donation.id).join(Supporter, Donation.supporter_id == Supporter.id)
                                  .where(Supporter.email == email).order_by(Donation.id.desc())).first()


# -- campaigns -----------------------------------------------------------------------------------

def default_campaign_id(app: Flask) -> int:
    with in_app(app):
        return db.session.scalars(select(Campaign.id).where(Campaign.slug == "default")).one()


def campaign_form(app: Flask, campaign_id: int, **overrides) -> dict:
    """The campaign editor's fields filled in with what is saved now, then ``overrides``."""
    with in_app(app):
        campaign = db.session.get(Campaign, campaign_id)
        data = {"headline": campaign.headline, "body": campaign.body, "button_label": campaign.button_label,
                "thank_you": campaign.thank_you, "default_frequency": campaign.default_frequency.value,
                "action": "save"}
        for frequency in Frequency:
            for currency in app.config["CURRENCIES"]:
                data[f"presets_{frequency.value}_{currency}"] = ", ".join(
                    Money(a, currency).major_str() for a in campaign.preset_amounts(frequency, currency))
    data.update(overrides)
    return data


def campaign_snapshot(app: Flask, campaign_id: int) -> dict:
    with in_app(app):
        c = db.session.get(Campaign, campaign_id)
        return {"headline": c.headline, "body": c.body, "button_label": c.button_label, "thank_you": c.thank_you,
                "default_frequency": c.default_frequency.value, "presets": c.presets}


# -- reading the database ------------------------------------------------------------------------

def count(app: Flask, model, *where) -> int:
    with in_app(app):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def audit_rows(app: Flask, *where) -> list[dict]:
    """Audit entries as plain dicts, oldest first."""
    with in_app(app):
        rows = db.session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id))
        return [{"actor_id": a.actor_id, "actor_email": a.actor_email, "action": a.action,
                 "object_type": a.object_type, "object_id": a.object_id, "outcome": a.outcome, "ip_hash": a.ip_hash,
                 "detail": a.detail} for a in rows]


def ip_hash_for(app: Flask, ip: str) -> str:
    """What the audit log and staff sessions store for an address: its keyed hash, never the address."""
    from donations.security.ip import hash_ip

    with app.test_request_context():
        return hash_ip(ip)


def user_state(app: Flask, user_id: int) -> tuple[str, bool]:
    with in_app(app):
        user = db.session.get(StaffUser, user_id)
        return user.role.value, user.active


def new_token() -> str:
    return str(uuid.uuid4())


# -- reading HTML --------------------------------------------------------------------------------

class ActiveContent(HTMLParser):
    """Collects what a browser would run: script bodies, on* attributes, javascript: URLs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.js_urls: list[tuple[str, str]] = []
        self.tags: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.js_urls.append((tag, value))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def active_content(html: str) -> ActiveContent:
    parser = ActiveContent()
    parser.feed(html)
    parser.close()
    return parser
