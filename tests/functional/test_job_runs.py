"""Each run of each job is recorded (start, end, outcome, counts, error, process), and kept 30 days."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from donations.config import Config, ConfigError
from donations.db import now_utc
from donations.extensions import db
from donations.job_runs import JobRun, RunOutcome, prune_runs
from donations.ledger.models import Supporter
from donations.scheduler import build_scheduler, registered_jobs, run_job

HERE = f"{socket.gethostname()}:{os.getpid()}"


def runs(job_id: str | None = None) -> list[JobRun]:
    db.session.expire_all()
    query = select(JobRun).order_by(JobRun.id)
    return list(db.session.scalars(query.where(JobRun.job_id == job_id) if job_id else query))


def test_a_run_is_recorded_with_its_counts_and_process(app_ctx):
    def busy():
        return {"sent": 2, "retry": 1, "failed": 0}

    run_job(app_ctx, busy, "outbox.send")

    [run] = runs("outbox.send")
    assert run.outcome is RunOutcome.OK
    assert run.counts == {"sent": 2, "retry": 1, "failed": 0}
    assert run.process == HERE and run.error is None
    assert run.started_at <= run.finished_at <= now_utc()


def test_the_run_is_on_record_as_running_while_the_job_runs(app_ctx):
    seen = []

    def watching():
        seen.extend((run.job_id, run.outcome, run.finished_at) for run in runs())
        return {}

    run_job(app_ctx, watching, "reports.exports")

    assert seen == [("reports.exports", RunOutcome.RUNNING, None)]
    assert runs()[0].outcome is RunOutcome.OK


def test_a_failed_job_is_rolled_back_but_its_run_is_recorded(app_ctx):
    def failing():
        db.session.add(Supporter(email="half-done@example.com"))
        db.session.flush()
        raise RuntimeError("Stripe answered nonsense\nsecond line with details")

    run_job(app_ctx, failing, "ledger.books")

    [run] = runs("ledger.books")
    assert run.outcome is RunOutcome.FAILED and run.finished_at is not None
    assert run.error == "RuntimeError: Stripe answered nonsense"
    assert db.session.scalar(select(func.count()).select_from(Supporter)) == 0


def test_the_error_keeps_no_sql_parameters(app_ctx):
    def leaky():
        db.session.execute(text("SELECT * FROM no_such_table WHERE email = :email"), {"email": "reader@example.com"})
        return {}

    run_job(app_ctx, leaky, "reports.scheduled")

    [run] = runs("reports.scheduled")
    assert run.outcome is RunOutcome.FAILED
    assert "no_such_table" in run.error
    assert "reader@example.com" not in run.error and "[SQL" not in run.error


def test_every_registered_job_records_its_runs_under_its_id(app_ctx):
    for job in build_scheduler(app_ctx).get_jobs():
        job.func(*job.args, **job.kwargs)  # what the scheduler calls on each tick

    assert {run.job_id: run.outcome for run in runs()} == {
        job.id: RunOutcome.OK for job in registered_jobs(app_ctx.config)}


def test_runs_older_than_the_kept_days_are_deleted(app_ctx, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "JOB_RUNS_KEEP_DAYS", 30)
    now = now_utc()
    for age in (31, 29, 0):
        db.session.add(JobRun(job_id="outbox.send", started_at=now - timedelta(days=age),
                              finished_at=now - timedelta(days=age), outcome=RunOutcome.OK, process="h:1"))
    db.session.commit()

    assert prune_runs(now) == {"deleted": 1}
    assert sorted((now - run.started_at).days for run in runs()) == [0, 29]


def test_the_test_tick_runs_every_job_on_one_short_interval(app):
    config = {**app.config, "SCHEDULER_TICK_SECONDS": 1.5}
    jobs = registered_jobs(config)

    assert {(job.trigger, job.trigger_args["seconds"]) for job in jobs} == {("interval", 1.5)}
    assert {job.id for job in jobs} == {job.id for job in registered_jobs(app.config)}


def test_production_refuses_the_test_tick():
    config = Config(environ={"DONATIONS_ENV": "production", "STRIPE_SECRET_KEY": "sk_live_x",
                             "STRIPE_WEBHOOK_SECRET": "whsec_real", "SMTP_URL": "smtp://mail.example.org",
                             "SECRET_KEY": "x" * 40, "SCHEDULER_TICK_SECONDS": "1"})

    with pytest.raises(ConfigError, match="SCHEDULER_TICK_SECONDS is for tests only"):
        config.validate()


@pytest.mark.parametrize("environ, message", [
    ({"SCHEDULER_HEARTBEAT_SECONDS": "20", "SCHEDULER_LEADER_TIMEOUT_SECONDS": "30"}, "at least twice"),
    ({"SCHEDULER_STANDBY_POLL_SECONDS": "0"}, "must be above 0"),
    ({"JOB_RUNS_KEEP_DAYS": "0"}, "JOB_RUNS_KEEP_DAYS"),
])
def test_scheduler_settings_that_would_break_leadership_are_refused(environ, message):
    with pytest.raises(ConfigError, match=message):
        Config(environ=environ).validate()
