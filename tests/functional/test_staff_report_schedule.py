"""/staff/reports/schedule: admins choose who gets the scheduled reports and when, accountants look, bad input
writes nothing, and "send now" queues a report at once without standing in for the scheduled one."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.mail.models import OutboxEmail
from donations.reports.jobs import send_scheduled_reports
from donations.reports.schedule import ReportKind, ReportSchedule, get_schedule
from donations.staff.models import AuditEntry
from tests.dates import days_around
from tests.functional.helpers import hidden_value
from tests.staff_helpers import audit_rows, in_app, signed_in

PAGE = "/staff/reports/schedule"
WEEKLY, MONTHLY = "weekly_supporters", "monthly_accounting"


def settings(app, kind: str) -> dict:
    with in_app(app):
        s = get_schedule(ReportKind(kind))
        return {"enabled": s.enabled, "recipients": s.recipients, "working_day": s.working_day,
                "weekday": s.weekday, "send_hour": s.send_hour}


def set_recipients(app, kind: str, recipients: list[str], enabled: bool = True) -> None:
    with in_app(app):
        schedule = get_schedule(ReportKind(kind))
        schedule.recipients, schedule.enabled = recipients, enabled
        db.session.commit()


def weekly_form(**fields) -> dict:
    data = {"enabled": "y", "recipients": "ada@example.org", "weekday": "0", "send_hour": "7", **fields}
    return {f"{WEEKLY}-{name}": value for name, value in data.items() if value is not None}


def monthly_form(**fields) -> dict:
    data = {"enabled": "y", "recipients": "ada@example.org", "working_day": "1", "send_hour": "7", **fields}
    return {f"{MONTHLY}-{name}": value for name, value in data.items() if value is not None}


def outbox_keys(app) -> list[str]:
    with in_app(app):
        return list(db.session.scalars(select(OutboxEmail.dedupe_key).order_by(OutboxEmail.id)))


def field_errors(html: str, field_id: str) -> list[str]:
    match = re.search(rf'<ul class="errors" id="{re.escape(field_id)}-error">(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", match.group(1)) if match else []


@pytest.fixture
def admin(client):
    return signed_in(client, "admin")


DEFAULTS = {"enabled": False, "recipients": [], "working_day": 1, "weekday": 0, "send_hour": 7}


def test_the_migration_seeds_both_reports_off_on_the_first_working_day_and_monday_at_seven(app_ctx):
    rows = {s.kind: s for s in db.session.scalars(select(ReportSchedule))}

    assert set(rows) == {ReportKind.MONTHLY_ACCOUNTING, ReportKind.WEEKLY_SUPPORTERS}
    for schedule in rows.values():
        assert (schedule.enabled, schedule.recipients, schedule.working_day, schedule.weekday,
                schedule.send_hour) == (False, [], 1, 0, 7)


def test_admin_sees_both_reports_with_their_settings_and_the_holiday_caveat(admin):
    response = admin.get(PAGE)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "Monthly accounting report" in html and "Weekly supporter report" in html
    assert "public holidays are not taken into account" in html
    assert hidden_value(html, f"{MONTHLY}-working_day") == "1"
    assert '<option selected value="0">Monday</option>' in html
    assert hidden_value(html, f"{WEEKLY}-send_hour") == hidden_value(html, f"{MONTHLY}-send_hour") == "7"
    assert html.count(">Send now</button>") == 2


def test_the_reports_page_links_to_the_schedule(admin):
    assert f'href="{PAGE}"' in admin.get("/staff/reports").get_data(as_text=True)


def test_admin_saves_the_weekly_report_and_it_is_audited(admin, client):
    response = admin.post(f"{PAGE}/{WEEKLY}", weekly_form(
        recipients="Ada@Example.org, bob@example.org\r\ncarol@example.org\n", weekday="2", send_hour="9"))

    assert response.status_code == 303
    assert settings(client.application, WEEKLY) == {
        "enabled": True, "recipients": ["ada@example.org", "bob@example.org", "carol@example.org"],
        "working_day": 1, "weekday": 2, "send_hour": 9}
    assert settings(client.application, MONTHLY) == DEFAULTS
    [entry] = audit_rows(client.application, AuditEntry.action == "report_schedule.edit")
    assert entry["actor_id"] == admin.id and entry["object_id"] == WEEKLY
    assert entry["detail"]["changed"] == {
        "enabled": {"from": False, "to": True},
        "recipients": {"from": [], "to": ["ada@example.org", "bob@example.org", "carol@example.org"]},
        "weekday": {"from": 0, "to": 2}, "send_hour": {"from": 7, "to": 9}}
    page = admin.get(PAGE).get_data(as_text=True)
    assert "Weekly supporter report: saved." in page
    assert "ada@example.org\nbob@example.org\ncarol@example.org</textarea>" in page
    assert "On, to 3 recipients. This period's report " in page


def test_admin_saves_the_monthly_report_on_its_third_working_day(admin, client):
    assert admin.post(f"{PAGE}/{MONTHLY}", monthly_form(working_day="3", send_hour="0")).status_code == 303

    assert settings(client.application, MONTHLY) == {"enabled": True, "recipients": ["ada@example.org"],
                                                     "working_day": 3, "weekday": 0, "send_hour": 0}


def test_admin_may_turn_a_report_off_and_empty_its_recipients(admin, client):
    set_recipients(client.application, WEEKLY, ["ada@example.org"])

    assert admin.post(f"{PAGE}/{WEEKLY}", weekly_form(enabled=None, recipients="")).status_code == 303
    assert settings(client.application, WEEKLY) == DEFAULTS


@pytest.mark.parametrize("fields, field, message", [
    ({"recipients": "ada@example.org, not-an-address"}, "recipients",
     "“not-an-address” is not a valid email address."),
    ({"recipients": "ada@example.org\nbob@"}, "recipients", "“bob@” is not a valid email address."),
    ({"recipients": "  \n , "}, "recipients", "Add at least one recipient, or stop sending this report."),
    ({"send_hour": "24"}, "send_hour", "Enter an hour from 0 to 23."),
    ({"send_hour": "-1"}, "send_hour", "Enter an hour from 0 to 23."),
    ({"send_hour": "seven"}, "send_hour", "Enter an hour from 0 to 23."),
    ({"send_hour": ""}, "send_hour", "Enter an hour from 0 to 23."),
    ({"weekday": "7"}, "weekday", "Not a valid choice."),
    ({"weekday": "Monday"}, "weekday", "Invalid Choice: could not coerce."),
])
def test_bad_weekly_settings_show_the_form_again_with_the_error_and_write_nothing(admin, client, fields, field,
                                                                                   message):
    response = admin.post(f"{PAGE}/{WEEKLY}", weekly_form(**fields))
    html = response.get_data(as_text=True)

    assert response.status_code == 400
    assert field_errors(html, f"{WEEKLY}-{field}") == [message]
    assert settings(client.application, WEEKLY) == DEFAULTS
    assert audit_rows(client.application, AuditEntry.action == "report_schedule.edit") == []
    assert "Monthly accounting report" in html  # the whole page, the other report's form too


@pytest.mark.parametrize("working_day", ["0", "21", "first"])
def test_a_working_day_outside_one_to_twenty_is_refused(admin, client, working_day):
    response = admin.post(f"{PAGE}/{MONTHLY}", monthly_form(working_day=working_day))

    assert response.status_code == 400
    assert field_errors(response.get_data(as_text=True), f"{MONTHLY}-working_day") == [
        "Enter a working day from 1 to 20."]
    assert settings(client.application, MONTHLY) == DEFAULTS


def test_the_form_keeps_what_was_typed_when_it_comes_back_with_errors(admin):
    html = admin.post(f"{PAGE}/{WEEKLY}", weekly_form(recipients="ada@example.org, oops", send_hour="9")).get_data(
        as_text=True)

    assert "ada@example.org, oops</textarea>" in html
    assert hidden_value(html, f"{WEEKLY}-send_hour") == "9"


def test_too_many_recipients_are_refused(admin, client):
    many = ", ".join(f"r{i}@example.org" for i in range(21))
    response = admin.post(f"{PAGE}/{WEEKLY}", weekly_form(recipients=many))

    assert response.status_code == 400
    assert field_errors(response.get_data(as_text=True), f"{WEEKLY}-recipients") == ["At most 20 recipients."]
    assert settings(client.application, WEEKLY) == DEFAULTS


def test_saving_without_the_csrf_token_is_refused(admin, client):
    response = admin.post(f"{PAGE}/{WEEKLY}", weekly_form(), csrf=False)

    assert response.status_code == 400
    assert settings(client.application, WEEKLY) == DEFAULTS


def test_an_unknown_report_is_404(admin):
    assert admin.post(f"{PAGE}/yearly_gala", weekly_form()).status_code == 404
    assert admin.post(f"{PAGE}/yearly_gala/send", {"token": uuid.uuid4().hex}).status_code == 404


# -- who may do what ---------------------------------------------------------------------------------

def test_accountant_sees_the_settings_but_cannot_change_them(client):
    set_recipients(client.application, MONTHLY, ["books@example.org"])
    accountant = signed_in(client, "accountant")
    html = accountant.get(PAGE).get_data(as_text=True)

    assert "books@example.org</textarea>" in html
    assert "Only admins can change these settings." in html
    assert ">Save</button>" not in html and ">Send now</button>" not in html
    assert re.search(rf'<textarea disabled id="{MONTHLY}-recipients"', html)

    assert accountant.post(f"{PAGE}/{MONTHLY}", monthly_form(recipients="me@example.org")).status_code == 403
    assert accountant.post(f"{PAGE}/{MONTHLY}/send", {"token": uuid.uuid4().hex}).status_code == 403
    assert settings(client.application, MONTHLY)["recipients"] == ["books@example.org"]
    assert outbox_keys(client.application) == []


def test_staff_role_can_neither_see_nor_change_the_schedule(client):
    staff = signed_in(client, "staff")

    assert staff.get(PAGE).status_code == 403
    assert staff.post(f"{PAGE}/{WEEKLY}", weekly_form()).status_code == 403
    assert staff.post(f"{PAGE}/{WEEKLY}/send", {"token": uuid.uuid4().hex}).status_code == 403
    assert settings(client.application, WEEKLY) == DEFAULTS
    assert outbox_keys(client.application) == []
    denied = audit_rows(client.application, AuditEntry.outcome == "denied")
    assert [(a["detail"]["method"], a["detail"]["permission"]) for a in denied] == [
        ("GET", "reports.read"), ("POST", "reports.schedule"), ("POST", "reports.schedule")]


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(PAGE)

    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


# -- send now ----------------------------------------------------------------------------------------

def test_send_now_queues_the_report_to_every_recipient_once_per_click_and_is_audited(admin, client):
    set_recipients(client.application, MONTHLY, ["ada@example.org", "bob@example.org"], enabled=False)
    token = uuid.uuid4().hex

    with days_around() as days:
        first = admin.post(f"{PAGE}/{MONTHLY}/send", {"token": token})
        again = admin.post(f"{PAGE}/{MONTHLY}/send", {"token": token})  # the same button, clicked twice

    assert first.status_code == again.status_code == 303
    keys = outbox_keys(client.application)
    assert keys in [[f"report:monthly_accounting:{day:%Y-%m}:now:{token}:ada@example.org",
                     f"report:monthly_accounting:{day:%Y-%m}:now:{token}:bob@example.org"] for day in days]
    with in_app(client.application):
        subjects = list(db.session.scalars(select(OutboxEmail.subject)))
    assert all(s.startswith("Accounting report for ") for s in subjects)
    entries = audit_rows(client.application, AuditEntry.action == "report.send_now")
    assert entries[0]["object_id"] == MONTHLY and entries[0]["detail"]["recipients"] == ["ada@example.org",
                                                                                         "bob@example.org"]
    assert "Monthly accounting report: on its way to 2 recipients." in admin.get(PAGE).get_data(as_text=True)


def test_send_now_does_not_stand_in_for_the_scheduled_report(admin, client):
    set_recipients(client.application, WEEKLY, ["ada@example.org"])
    assert admin.post(f"{PAGE}/{WEEKLY}/send", {"token": uuid.uuid4().hex}).status_code == 303

    with in_app(client.application):
        schedule = get_schedule(ReportKind.WEEKLY_SUPPORTERS)
        schedule.weekday, schedule.send_hour = 0, 0
        db.session.commit()
        now = datetime.now(timezone.utc)
        assert send_scheduled_reports(now=now) == {"queued": 1, "failed": 0}

    keys = outbox_keys(client.application)
    assert len(keys) == 2 and ":now:" in keys[0] and ":now:" not in keys[1]


def test_send_now_without_recipients_says_so_and_queues_nothing(admin, client):
    response = admin.post(f"{PAGE}/{WEEKLY}/send", {"token": uuid.uuid4().hex})

    assert response.status_code == 303
    assert "Add at least one recipient and save first." in admin.get(PAGE).get_data(as_text=True)
    assert outbox_keys(client.application) == []


@pytest.mark.parametrize("data", [{"token": "not-a-token"}, {}])
def test_send_now_with_a_bad_token_is_refused(admin, client, data):
    set_recipients(client.application, WEEKLY, ["ada@example.org"])

    assert admin.post(f"{PAGE}/{WEEKLY}/send", data).status_code == 400
    assert outbox_keys(client.application) == []


def test_send_now_without_the_csrf_token_is_refused(admin, client):
    set_recipients(client.application, WEEKLY, ["ada@example.org"])

    assert admin.post(f"{PAGE}/{WEEKLY}/send", {"token": uuid.uuid4().hex}, csrf=False).status_code == 400
    assert outbox_keys(client.application) == []
