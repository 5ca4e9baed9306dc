"""/staff/jobs: every scheduled job with its schedule and latest runs, and which scheduler leads."""
from __future__ import annotations

from flask import current_app, render_template

from ..db import now_utc
from ..job_runs import RunOutcome, last_failure, recent_runs
from ..leader import leadership
from ..scheduler import registered_jobs
from ..security.models import SecurityState
from . import auth
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
                           failing=[row["job"] for row in rows if row["failing"]], attack=attack_mode_state())


def attack_mode_state() -> dict:
    """Attack mode as staff see it: on until when (or off), since when, and what the last check saw."""
    from ..extensions import db
    from ..security.antifraud import ATTACK_MODE
    from ..security.jobs import _aware

    state = db.session.get(SecurityState, ATTACK_MODE)
    until = _aware(state.active_until) if state is not None else None
    return {"active": until is not None and until > now_utc(), "until": until,
            "started_at": _aware(state.started_at) if state is not None else None,
            "alerted_at": _aware(state.alerted_at) if state is not None else None,
            "detail": state.detail if state is not None else None,
            "captcha": current_app.config["CAPTCHA_PROVIDER"]}
