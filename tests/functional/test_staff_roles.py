"""The role matrix: every staff route and method, for admin, staff, accountant and anonymous visitors."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import url_for

from sqlalchemy import select

from donations.campaigns.models import CampaignVariant
from donations.extensions import db
from donations.mail.models import EmailStatus, OutboxEmail
from donations.ledger.models import Donation, Frequency, Payout, RecurringDonation, RecurringStatus
from donations.staff import article_views, book_views, job_views, schedule_views, statement_views  # noqa: F401  (views defined outside views.py)
from donations.reports.statements import issue_statement
from donations.staff import views as staff_views
from donations.staff.auth import PERMISSIONS
from donations.reports.jobs import run_exports
from donations.reports.models import ExportJob
from donations.reports.registry import ExportParams
from donations.staff.models import AuditEntry, Role
from tests.staff_helpers import (
    ip_hash_for,
    audit_rows,
    campaign_form,
    default_campaign_id,
    in_app,
    is_sign_in_redirect,
    login_csrf,
    make_user,
    new_token,
    signed_in,
    webhook_gift,
)


@dataclass(frozen=True)
class Route:
    method: str
    endpoint: str
    path: str  #: with {supporter}, {donation}, {recurring}, {campaign}, {user} filled in from the world
    #: Fields added to the route's form: a second step that posts to the same route (a refund's confirmation).
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + "".join(f" {k}={v}" for k, v in self.extra)


#: Every staff route and method, except sign-in and sign-out (which everyone may use).
ROUTES = [
    Route("GET", "staff.dashboard", "/staff/"),
    Route("GET", "staff.supporters", "/staff/supporters"),
    Route("GET", "staff.supporter", "/staff/supporters/{supporter}"),
    Route("POST", "staff.resend_receipt", "/staff/supporters/{supporter}/donations/{donation}/resend"),
    Route("POST", "staff.cancel_recurring", "/staff/supporters/{supporter}/recurring/{recurring}/cancel"),
    Route("POST", "staff.issue_statement", "/staff/supporters/{supporter}/statements"),
    Route("GET", "staff.statement_pdf", "/staff/supporters/{supporter}/statements/{statement}.pdf"),
    Route("GET", "staff.supporter_data_json", "/staff/supporters/{supporter}/data.json"),
    Route("GET", "staff.supporter_data_zip", "/staff/supporters/{supporter}/data.zip"),
    #: Another supporter: the world's own has a recurring gift the sandbox does not hold, which erasure cancels.
    Route("POST", "staff.erase_supporter", "/staff/supporters/{erasable}/erase"),
    Route("GET", "staff.donations", "/staff/donations"),
    Route("GET", "staff.donation", "/staff/donations/{donation}"),
    Route("POST", "staff.refund", "/staff/donations/{donation}/refund"),  # asks to confirm
    Route("POST", "staff.refund", "/staff/donations/{donation}/refund", (("confirm", "1"),)),  # refunds
    Route("GET", "staff.campaigns", "/staff/campaigns"),
    Route("GET", "staff.campaign", "/staff/campaigns/{campaign}"),
    Route("GET", "staff.articles", "/staff/articles"),
    Route("POST", "staff.save_campaign", "/staff/campaigns/{campaign}"),
    Route("POST", "staff.create_campaign", "/staff/campaigns"),
    Route("POST", "staff.save_campaign_settings", "/staff/campaigns/{campaign}/settings"),
    Route("POST", "staff.create_variant", "/staff/campaigns/{campaign}/variants"),
    Route("GET", "staff.variant", "/staff/campaigns/{campaign}/variants/{variant}"),
    Route("POST", "staff.save_variant", "/staff/campaigns/{campaign}/variants/{variant}"),
    Route("POST", "staff.save_translation", "/staff/campaigns/{campaign}/variants/{variant}/translations"),
    Route("GET", "staff.outbox", "/staff/emails"),
    Route("POST", "staff.resend_email", "/staff/emails/{email}/resend"),
    Route("GET", "staff.audit_log", "/staff/audit"),
    Route("GET", "staff.reports", "/staff/reports"),
    Route("GET", "staff.payouts", "/staff/payouts"),
    Route("GET", "staff.payout", "/staff/payouts/{payout}"),
    Route("POST", "staff.close", "/staff/books/close"),
    Route("GET", "staff.report_schedule", "/staff/reports/schedule"),
    Route("POST", "staff.save_report_schedule", "/staff/reports/schedule/{kind}"),
    Route("POST", "staff.send_report_now", "/staff/reports/schedule/{kind}/send"),
    Route("POST", "staff.reports", "/staff/reports"),
    Route("GET", "staff.export_job", "/staff/reports/jobs/{job}"),
    Route("GET", "staff.export_job_status", "/staff/reports/jobs/{job}/status"),
    Route("GET", "staff.export_download", "/staff/reports/jobs/{job}/download"),
    Route("GET", "staff.jobs", "/staff/jobs"),
    Route("POST", "staff.end_attack_mode", "/staff/jobs/attack-mode/end"),
    Route("GET", "staff.users", "/staff/users"),
    Route("POST", "staff.create_user", "/staff/users"),
    Route("POST", "staff.change_user", "/staff/users/{user}"),
]
ROLES = [Role.ADMIN, Role.STAFF, Role.ACCOUNTANT]


def route(method: str, endpoint: str) -> Route:
    return next(r for r in ROUTES if (r.method, r.endpoint) == (method, endpoint))


def routes(method: str, endpoint: str) -> list[Route]:
    """Every step of a route: the refund's first post and its confirmation."""
    return [r for r in ROUTES if (r.method, r.endpoint) == (method, endpoint)]


@pytest.fixture
def world(client) -> dict:
    """One supporter with a paid gift (through the webhook) and a monthly gift, another staff user, and a
    background export written by the scheduler's job."""
    app = client.application
    donation = webhook_gift(client, email="matrix@example.com")
    with in_app(app):
        gift = db.session.get(Donation, donation)
        recurring = RecurringDonation(supporter_id=gift.supporter_id, amount=1000, currency="EUR",
                                      frequency=Frequency.MONTHLY, status=RecurringStatus.ACTIVE,
                                      stripe_subscription_id="sub_test_matrix")
        db.session.add(recurring)
        db.session.add(Payout(stripe_payout_id="po_matrix", amount=1000, currency="EUR", status="paid",
                              created=datetime(2026, 10, 1, tzinfo=timezone.utc), arrival_date=date(2026, 10, 3)))
        gift.paid_at = gift.paid_at.replace(year=2025)  # a fiscal year that has ended, so it has a statement
        statement = issue_statement(gift.supporter, 2025)
        db.session.commit()
        # The gift's receipt, refused by the reader's mail server, so that it can be resent.
        receipt = db.session.scalars(select(OutboxEmail).where(
            OutboxEmail.to_address == "matrix@example.com", OutboxEmail.template == "receipt")).one()
        receipt.status, receipt.last_error = EmailStatus.FAILED, "SMTPRecipientsRefused: 550 No such user"
        db.session.commit()
        ids = {"supporter": gift.supporter_id, "donation": donation, "recurring": recurring.id,
               "payout": "po_matrix", "statement": statement.id, "email": receipt.id}
    with in_app(app):
        ids["erasable"] = db.session.get(Donation, webhook_gift(client, email="erasable@example.com")).supporter_id
    ids["campaign"] = default_campaign_id(app)
    with in_app(app):
        ids["variant"] = db.session.scalars(select(CampaignVariant.id).where(
            CampaignVariant.campaign_id == ids["campaign"], CampaignVariant.key == "a")).one()
    ids["user"] = make_user(app, "staff", "target@example.org")[0]
    ids["kind"] = "weekly_supporters"
    accountant = make_user(app, "accountant", "exporter@example.org")[0]
    with in_app(app):  # queued as the form does, less the audit entry (the matrix counts those)
        job = ExportJob(requested_by_id=accountant, kind="donations", format="csv",
                        params=ExportParams(date(2026, 1, 1), date(2026, 12, 31)).to_json())
        db.session.add(job)
        db.session.commit()
        ids["job"] = job.id
        assert run_exports()["done"] == 1
    return ids


def form_for(r: Route, app, world: dict, role: str) -> dict:
    """A valid form for each POST route, so that a permitted user gets 200 or 303."""
    return {
        "staff.resend_receipt": {},
        "staff.cancel_recurring": {"when": "period_end"},
        "staff.refund": {"amount": "1.00", "token": new_token()},
        "staff.save_campaign": campaign_form(app, world["campaign"], headline=f"Edited by {role}"),
        "staff.create_campaign": {"slug": f"new-{role}", "name": f"New by {role}", "language": "en"},
        "staff.save_campaign_settings": {"name": f"Edited by {role}", "language": "en", "active": "y",
                                         "priority": "0", "goal_currency": "EUR", "goal_period": "month",
                                         "placement": "inline", "allocation": "split", "allocation_floor": "10"},
        "staff.create_variant": {"key": role[:16], "name": f"By {role}", "weight": "1", "active": "y"},
        "staff.save_variant": {"name": f"Control, edited by {role}", "weight": "1", "active": "y"},
        "staff.save_translation": {"locale": "de", "headline": f"Von {role}"},
        "staff.create_user": {"email": f"new-{role}@example.org", "role": "staff", "password": "a" * 16},
        "staff.change_user": {"role": "accountant", "active": "1"},
        "staff.close": {"through": "2026-01-31"},
        "staff.save_report_schedule": {"weekly_supporters-enabled": "y", "weekly_supporters-send_hour": "7",
                                       "weekly_supporters-weekday": "0",
                                       "weekly_supporters-recipients": f"{role}@example.org"},
        "staff.send_report_now": {"token": new_token()},
        "staff.issue_statement": {"fiscal_year": "2025"},
        "staff.erase_supporter": {"reason": f"Asked by email, erased by {role}"},
        "staff.reports": {"kind": "donations", "start": "2026-01-01", "end": "2026-01-31", "format": "csv"},
    }.get(r.endpoint, {})


def request_as(staff, r: Route, world: dict):
    path = r.path.format(**world)
    if r.method == "GET":
        response = staff.get(path)
        response.close()  # a download holds its file open until it is read or closed
        return path, response
    return path, staff.post(path, {**form_for(r, staff.client.application, world, staff.role.value), **dict(r.extra)})


def view_of(endpoint: str):
    """A staff view as its module defines it: donations.staff.views, or a module of its own that adds
    routes to the staff blueprint (payouts and books, scheduled reports…)."""
    name = endpoint.removeprefix("staff.")
    modules = [module for module_name, module in sorted(sys.modules.items())
               if module_name.startswith("donations.staff.") and module is not None]
    return next(getattr(module, name) for module in [staff_views, *modules]
                if hasattr(getattr(module, name, None), "permission"))


def permission_of(endpoint: str) -> str:
    """The permission a staff view declares (donations.staff.auth.require sets it on the view)."""
    return view_of(endpoint).permission


def permitted(r: Route, role: Role) -> bool:
    """What donations.staff.auth.PERMISSIONS says for this route's permission."""
    return role in PERMISSIONS[permission_of(r.endpoint)]


ALLOWED = [(role, r) for r in ROUTES for role in ROLES if permitted(r, role)]
DENIED = [(role, r) for r in ROUTES for role in ROLES if not permitted(r, role)]


def case_id(case) -> str:
    role, r = case
    return f"{role.value} {r.id}"


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_permitted_role_gets_200_or_303(client, world, case):
    role, r = case
    staff = signed_in(client, role)
    path, response = request_as(staff, r, world)

    assert response.status_code in (200, 303), response.status_code
    assert audit_rows(client.application, AuditEntry.outcome == "denied") == []


@pytest.mark.parametrize("case", DENIED, ids=case_id)
def test_forbidden_role_gets_403(client, world, case):
    role, r = case
    staff = signed_in(client, role)
    path, response = request_as(staff, r, world)

    assert response.status_code == 403


@pytest.mark.parametrize("case", DENIED, ids=case_id)
def test_every_denied_attempt_writes_a_denied_audit_entry(client, world, case):
    role, r = case
    staff = signed_in(client, role)
    path, response = request_as(staff, r, world)

    assert response.status_code == 403
    [entry] = audit_rows(client.application, AuditEntry.outcome == "denied")
    assert entry["action"] == "denied"
    assert entry["actor_id"] == staff.id and entry["actor_email"] == staff.email
    assert entry["ip_hash"] == ip_hash_for(client.application, "127.0.0.1")
    assert entry["detail"]["path"] == path and entry["detail"]["method"] == r.method
    assert entry["detail"]["permission"] == permission_of(r.endpoint)


def test_the_matrix_has_both_outcomes_for_every_role_but_admin():
    assert {role for role, _ in DENIED} == {Role.STAFF, Role.ACCOUNTANT}
    assert len(ALLOWED) + len(DENIED) == len(ROUTES) * len(ROLES)


def test_both_steps_of_a_refund_are_in_the_matrix():
    assert [r.extra for r in routes("POST", "staff.refund")] == [(), (("confirm", "1"),)]


@pytest.mark.parametrize("extra", [{}, {"confirm": "1"}], ids=["first step", "confirmation"])
def test_accountant_is_forbidden_both_steps_of_a_refund(client, world, extra):
    staff = signed_in(client, "accountant")
    response = staff.post(f"/staff/donations/{world['donation']}/refund",
                          {"amount": "1.00", "token": new_token(), **extra})

    assert response.status_code == 403


def status_of(client, world, role: str, method: str, endpoint: str) -> int:
    staff = signed_in(client, role)
    return request_as(staff, route(method, endpoint), world)[1].status_code


@pytest.mark.parametrize("method, endpoint", [
    ("POST", "staff.refund"),
    ("POST", "staff.save_campaign"),
    ("POST", "staff.create_campaign"),
    ("POST", "staff.save_campaign_settings"),
    ("POST", "staff.create_variant"),
    ("POST", "staff.save_variant"),
    ("POST", "staff.save_translation"),
    ("POST", "staff.resend_receipt"),
    ("POST", "staff.cancel_recurring"),
    ("GET", "staff.supporter_data_json"),
    ("POST", "staff.erase_supporter"),
    ("GET", "staff.users"),
    ("POST", "staff.create_user"),
    ("POST", "staff.change_user"),
    ("POST", "staff.end_attack_mode"),
])
def test_accountant_is_forbidden_to_change_anything(client, world, method, endpoint):
    assert status_of(client, world, "accountant", method, endpoint) == 403


@pytest.mark.parametrize("method, endpoint", [
    ("GET", "staff.dashboard"), ("GET", "staff.supporters"), ("GET", "staff.supporter"), ("GET", "staff.donations"),
    ("GET", "staff.donation"), ("GET", "staff.campaigns"), ("GET", "staff.campaign"), ("GET", "staff.audit_log"),
])
def test_accountant_can_read(client, world, method, endpoint):
    assert status_of(client, world, "accountant", method, endpoint) == 200


@pytest.mark.parametrize("method, endpoint", [
    ("GET", "staff.users"), ("POST", "staff.create_user"), ("POST", "staff.change_user"),
    ("POST", "staff.end_attack_mode"),
])
def test_staff_is_forbidden_the_users_pages(client, world, method, endpoint):
    assert status_of(client, world, "staff", method, endpoint) == 403


@pytest.mark.parametrize("method, endpoint", [
    ("POST", "staff.refund"), ("POST", "staff.save_campaign"), ("POST", "staff.resend_receipt"),
    ("POST", "staff.cancel_recurring"), ("GET", "staff.outbox"),
])
def test_staff_may_refund_edit_campaigns_resend_and_cancel(client, world, method, endpoint):
    assert status_of(client, world, "staff", method, endpoint) in (200, 303)


@pytest.mark.parametrize("r", ROUTES, ids=lambda r: r.id)
def test_admin_is_allowed_everywhere(client, world, r):
    assert request_as(signed_in(client, "admin"), r, world)[1].status_code in (200, 303)


def test_the_permission_table_says_what_the_issue_asks():
    assert PERMISSIONS["donations.refund"] == {Role.ADMIN, Role.STAFF}
    assert PERMISSIONS["campaigns.write"] == {Role.ADMIN, Role.STAFF}
    assert PERMISSIONS["supporters.write"] == {Role.ADMIN, Role.STAFF}
    assert PERMISSIONS["supporters.privacy"] == {Role.ADMIN, Role.STAFF}
    assert PERMISSIONS["users.read"] == PERMISSIONS["users.write"] == {Role.ADMIN}
    assert PERMISSIONS["jobs.attack_mode"] == {Role.ADMIN}
    assert all(Role.ADMIN in roles for roles in PERMISSIONS.values())


@pytest.mark.parametrize("r", ROUTES, ids=lambda r: r.id)
def test_anonymous_visitors_are_sent_to_sign_in(client, world, r):
    path = r.path.format(**world)
    if r.method == "GET":
        response = client.get(path)
    else:  # with a valid CSRF token, so that only the sign-in check stands in the way
        response = client.post(path, data={"csrf_token": login_csrf(client),
                                           **form_for(r, client.application, world, "anonymous"), **dict(r.extra)})

    assert is_sign_in_redirect(response), (response.status_code, response.headers.get("Location"))
    if r.method == "GET":
        assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [path]
    assert [a for a in audit_rows(client.application) if a["outcome"] == "ok" and a["action"] != "sign_in"] == []


def test_every_staff_route_is_in_the_matrix(app):
    """A new /staff route cannot be forgotten: it must be added to ROUTES (and so to the matrix)."""
    covered = {(r.method, r.endpoint) for r in ROUTES}
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/staff/") or rule.endpoint in ("staff.login", "staff.logout", "staff.static"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((method, rule.endpoint))
    assert found == covered


def test_every_matrix_path_is_the_routes_own_and_every_view_declares_a_permission(app):
    world = {"supporter": 1, "donation": 2, "recurring": 3, "campaign": 4, "variant": 9, "user": 5, "payout": "po_1",
             "kind": "weekly_supporters", "statement": 6, "job": 7, "email": 8, "erasable": 10}
    with app.test_request_context():
        for r in ROUTES:
            view = app.view_functions[r.endpoint]
            assert view is view_of(r.endpoint)
            assert getattr(view, "permission", None) in PERMISSIONS, r.endpoint
            args = {k if k == "kind" else "supporter_id" if k == "erasable" else f"{k}_id": v
                    for k, v in world.items() if "{" + k + "}" in r.path}
            assert url_for(r.endpoint, **args) == r.path.format(**world)


@pytest.mark.parametrize("path", ["/staff/supporters/100000000000000000000", "/staff/donations/100000000000000000000",
                                  "/staff/campaigns/100000000000000000000"])
def test_ids_beyond_the_integer_range_are_404_not_500(client, path):
    signed_in(client, Role.ADMIN)

    assert client.get(path).status_code == 404
