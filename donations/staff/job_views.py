"""/staff/jobs: every scheduled job with its schedule and latest runs, and which scheduler leads."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from ..db import now_utc
from ..extensions import db
from ..job_runs import RunOutcome, last_failure, recent_runs
from ..leader import leadership
from ..scheduler import registered_jobs
from ..security import jobs as security_jobs
from ..security.antifraud import forget_attack_mode
from ..security.models import SecurityState
from . import auth
from .forms import ActionForm
from .views import bp

#: Runs shown per job.
RUNS_SHOWN = 10


def job_rows() -> list[dict]:
    """Each registered job with its latest runs; ``failing`` when its last finished run failed, and the
    latest failure even when it is older than the runs shown."""
    rows = []
    for job in registered_jobs(current_app.config):
        runs = recent_runs(job.id, RUNS_SHOWN)
        finished = [run for run in runs if run.finished_at is not None]
        failure = last_failure(job.id)
        rows.append({"job": job, "runs": runs,
                     "failing": bool(finished) and finished[0].outcome is RunOutcome.FAILED,
                     "older_failure": failure if failure is not None and failure not in runs else None})
    return rows


@bp.get("/jobs")
@auth.require("jobs.read")
def jobs():
    """The scheduler at a glance; failures first in the eye (highlighted, and named at the top)."""
    rows = job_rows()
    leader = leadership(now_utc(), current_app.config["SCHEDULER_LEADER_TIMEOUT_SECONDS"])
    return render_template("staff/jobs.html", rows=rows, leader=leader,
                           failing=[row["job"] for row in rows if row["failing"]], attack=attack_mode_state(),
                           action_form=ActionForm(),
                           can_end_attack=current_user.role in auth.PERMISSIONS["jobs.attack_mode"])


@bp.post("/jobs/attack-mode/end")
@auth.require("jobs.attack_mode")
def end_attack_mode():
    """End attack mode now (admins): gifts no longer need the CAPTCHA (nor meet the stricter per-address
    limit). Only checkouts opened from now on count towards a new spike, so it switches on again only if
    the card testing goes on. Audited; when it is off already, a notice and nothing changed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    before = security_jobs.end_attack_mode()
    if before is None:
        flash("Attack mode is off already; nothing was changed.", "info")
    else:
        auth.audit("attack_mode.end", "security_state", "attack_mode", **before)
        db.session.commit()
        forget_attack_mode()
        flash("Attack mode is ended: gifts no longer need the CAPTCHA (web processes see it within seconds). "
              "Only checkouts opened from now on count towards a new spike: if the card testing goes on, "
              "attack mode switches on again by itself and staff are alerted.", "info")
    return redirect(url_for("staff.jobs", _anchor="attack-mode"), code=303)


def attack_mode_state() -> dict:
    """Attack mode as staff see it: on until when (or off), since when, what the last check saw, and when an
    admin last ended it by hand."""
    from ..security.antifraud import ATTACK_MODE
    from ..security.jobs import _aware

    state = db.session.get(SecurityState, ATTACK_MODE)
    until = _aware(state.active_until) if state is not None else None
    return {"active": until is not None and until > now_utc(), "until": until,
            "started_at": _aware(state.started_at) if state is not None else None,
            "alerted_at": _aware(state.alerted_at) if state is not None else None,
            "detail": state.detail if state is not None else None,
            "captcha": current_app.config["CAPTCHA_PROVIDER"], "ended_by_hand_at": security_jobs.ended_by_hand_at()}
