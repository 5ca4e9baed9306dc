"""/staff/reports/schedule: who receives the scheduled reports, and when. Admins edit; accountants look."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from ..db import now_utc
from ..extensions import db
from ..reports.schedule import ReportKind, ScheduleError, get_schedule, period_for, schedules, update_schedule
from ..reports.forms import FORMS, ScheduleForm, SendNowForm
from ..reports.summaries import send_now as queue_now
from . import auth
from .views import bp

KINDS = "any(monthly_accounting, weekly_supporters)"


def _form_for(schedule, formdata=None) -> ScheduleForm:
    """The settings form of one report, filled from the database (or, on a POST, from the request)."""
    values = {"enabled": schedule.enabled, "recipients": "\n".join(schedule.recipients),
              "send_hour": schedule.send_hour, "working_day": schedule.working_day, "weekday": schedule.weekday}
    cls = FORMS[schedule.kind]
    if formdata is None:
        return cls(formdata=None, prefix=schedule.kind.value, data=values)
    return cls(prefix=schedule.kind.value)


def _page(failed: ScheduleForm | None = None, failed_kind: ReportKind | None = None, status: int = 200):
    now = now_utc()
    reports = []
    for schedule in schedules():
        form = failed if schedule.kind is failed_kind else _form_for(schedule)
        reports.append({"schedule": schedule, "form": form, "next": period_for(schedule, now),
                        "send_form": SendNowForm(formdata=None)})
    return render_template("staff/report_schedule.html", reports=reports, now=now,
                           can_edit=current_user.role in auth.PERMISSIONS["reports.schedule"]), status


@bp.get("/reports/schedule")
@auth.require("reports.read")
def report_schedule():
    return _page()


@bp.post(f"/reports/schedule/<{KINDS}:kind>")
@auth.require("reports.schedule")
def save_report_schedule(kind: str):
    """Save one report's settings; bad input shows the form again with its errors, and nothing is written."""
    schedule = get_schedule(ReportKind(kind))
    form = _form_for(schedule, formdata=True)
    if not form.validate_on_submit():
        return _page(form, schedule.kind, status=400)
    day = {name: form[name].data for name in ("working_day", "weekday") if name in form}
    update_schedule(schedule, enabled=form.enabled.data, recipients=form.addresses, send_hour=form.send_hour.data,
                    **day)
    db.session.commit()
    flash(f"{schedule.kind.label}: saved.", "info")
    return redirect(url_for("staff.report_schedule"), code=303)


@bp.post(f"/reports/schedule/<{KINDS}:kind>/send")
@auth.require("reports.schedule")
def send_report_now(kind: str):
    """Queue one report to its recipients at once."""
    form = SendNowForm()
    if not form.validate_on_submit():
        abort(400)
    schedule = get_schedule(ReportKind(kind))
    try:
        counts = queue_now(schedule, form.token.data)
    except ScheduleError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"{schedule.kind.label}: on its way to {counts['queued']} recipient"
              f"{'' if counts['queued'] == 1 else 's'}.", "info")
    return redirect(url_for("staff.report_schedule"), code=303)
