"""The hostile suite's world: one set of real rows and three signed-in browsers, shared by a whole module.

Building the world (a monthly gift paid through the sandbox, an admin signed in through the real form, a variant,
a statement and an export job made through the staff forms) costs about a second, so it is made once per module,
inside one database transaction that is rolled back at the end, like the ``connection`` fixture does per test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from hypothesis import settings
from sqlalchemy import func, select

from donations.accounts.tokens import make_token
from donations.campaigns.models import Campaign, CampaignVariant
from donations.extensions import db
from donations.ledger.models import Donation, Payout, RecurringDonation, Supporter
from donations.mail.models import OutboxEmail
from donations.reports.models import AnnualStatement, ExportJob
from donations.staff.models import Role, StaffUser
from tests.functional.helpers import hidden_value
from tests.hostile import fuzzing  # noqa: F401  (registers the profile)
from tests.hostile.forms import Form, crawl
from tests.staff_helpers import in_app, make_user, sandbox_gift, signed_in
from tests.conftest import reset_limits

settings.load_profile("hostile")

#: Forms submitted once with valid values while the world is built, so that the rows their pages need exist.
CREATORS = {"staff.create_variant": {"key": "b", "name": "Variant B", "weight": "50"},
            "staff.issue_statement": {}, "staff.reports": {}}


@dataclass
class World:
    staff: FlaskClient
    supporter: FlaskClient
    reader: FlaskClient
    visitor: FlaskClient
    admin_id: int
    ids: dict = field(default_factory=dict)
    forms: list[Form] = field(default_factory=list)

    def forms_for(self, endpoint: str) -> list[Form]:
        """The distinct forms posting to ``endpoint`` (one per set of fields and action shape)."""
        seen, out = set(), []
        for form in self.forms:
            if form.endpoint != endpoint or form.method != "post":
                continue
            if endpoint == "staff.change_user" and form.action.rstrip("/").endswith(f"/{self.admin_id}"):
                continue  # fuzzing the admin's own role would sign the fuzzing browser out
            buttons = tuple((n, v) for n, v in form.fields if (n, v) in form.buttons)
            shape = (tuple(form.names()), buttons, tuple(p for p in urlsplit(form.action).path.split("/")
                                                  if not p.isdigit() and len(p) < 40))
            if shape not in seen:
                seen.add(shape)
                out.append(form)
        return out


def _max_id(model, column="id"):
    return db.session.scalar(select(func.max(getattr(model, column))))


def _ids(app, world_ids: dict) -> dict:
    with in_app(app):
        supporter = db.session.scalars(select(Supporter).order_by(Supporter.id.desc())).first()
        ids = {
            "supporter_id": supporter.id,
            "donation_id": _max_id(Donation),
            "recurring_id": _max_id(RecurringDonation),
            "campaign_id": db.session.scalar(select(Campaign.id).where(Campaign.slug == "default")),
            "variant_id": _max_id(CampaignVariant),
            "statement_id": _max_id(AnnualStatement),
            "job_id": _max_id(ExportJob),
            "email_id": _max_id(OutboxEmail),
            "payout_id": db.session.scalar(select(func.max(Payout.stripe_payout_id))) or "po_none",
            "user_id": _max_id(StaffUser),
            "slug": "default",
            "token": make_token(supporter.id, supporter.email),
        }
    world_ids.update({k: v for k, v in ids.items() if v is not None})
    return world_ids


@pytest.fixture(scope="module")
def world(app):
    engines = db._app_engines[app]
    engine = engines[None]
    conn = engine.connect()
    outer = conn.begin()
    engines[None] = conn
    reset_limits()
    try:
        yield _build(app)
    finally:
        engines[None] = engine
        outer.rollback()
        conn.close()
        reset_limits()


def _build(app) -> World:
    sandbox_gift(app, frequency="monthly", email="fuzz-reader@example.com")
    reader = app.test_client()
    html = reader.get("/donate").get_data(as_text=True)
    started = reader.post("/donate", data={
        "csrf_token": hidden_value(html, "csrf_token"), "token": hidden_value(html, "token"), "campaign": "default",
        "amount": "10.00", "currency": "EUR", "frequency": "one_off", "email": "fuzz-reader@example.com"})
    assert started.status_code == 303, started.get_data(as_text=True)
    staff = signed_in(app.test_client(), Role.ADMIN)
    make_user(app, Role.STAFF)  # someone whose role the users form can change
    world = World(staff=staff.client, supporter=app.test_client(), reader=reader,
                  visitor=app.test_client(), admin_id=staff.id,
                  ids={"session_id": urlsplit(started.headers["Location"]).path.rsplit("/", 1)[-1]})
    _ids(app, world.ids)
    world.forms = crawl(app, world)
    for form in world.forms:
        if form.endpoint in CREATORS and form.method == "post":
            data = form.data()
            data.update({k: [v] for k, v in CREATORS[form.endpoint].items()})
            world.staff.post(form.action, data=data)
    _ids(app, world.ids)
    world.forms = crawl(app, world)
    return world
