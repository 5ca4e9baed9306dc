"""The scheduler: the outbox job is registered so that it is never skipped, and one failing run stops nothing."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy import select, text

from donations.extensions import db
from donations.mail.models import EmailStatus, OutboxEmail
from donations.scheduler import build_scheduler, run_job
from tests.factories import checkout_session, event, make_attempt, post_event


def jobs_by_id(scheduler) -> dict:
    return {job.id: job for job in scheduler.get_jobs()}


def effective(scheduler, job, option: str):
    """What the job runs with once started: its own setting, else the scheduler's job defaults.

    Before start() APScheduler keeps jobs pending and fills in the defaults only when it adds them
    to the job store (BaseScheduler._real_add_job), so this mirrors that rule instead of starting it.
    """
    return getattr(job, option) if hasattr(job, option) else scheduler._job_defaults[option]


@pytest.fixture
def outbox_job(app):
    scheduler = build_scheduler(app)
    assert scheduler.state == STATE_STOPPED  # built, not started: nothing runs in the test process
    return scheduler, jobs_by_id(scheduler)["outbox.send"]


def test_outbox_job_is_registered(app):
    assert set(jobs_by_id(build_scheduler(app))) == {"outbox.send", "ledger.books", "reports.scheduled",
                                                     "reports.annual_statements", "reports.exports",
                                                     "scheduler.prune_runs", "payments.sync_events",
                                                     "privacy.ip_retention", "security.attack_mode",
                                                     "staff.dashboard_snapshot"}


def test_outbox_job_is_never_skipped_and_never_runs_twice_at_once(outbox_job):
    scheduler, job = outbox_job
    assert effective(scheduler, job, "coalesce") is True  # a backlog becomes one run
    assert effective(scheduler, job, "max_instances") == 1
    assert effective(scheduler, job, "misfire_grace_time") is None  # however late, it still runs


def test_outbox_job_runs_at_the_configured_interval(app, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_INTERVAL_SECONDS", 17)
    job = jobs_by_id(build_scheduler(app))["outbox.send"]
    assert job.trigger.interval == timedelta(seconds=17)


def test_outbox_job_sends_due_receipts(app_ctx, client, smtp_server, monkeypatch):
    host, port, messages = smtp_server
    monkeypatch.setitem(app_ctx.config, "SMTP_URL", f"smtp://{host}:{port}")
    attempt = make_attempt(email="ada@example.com")
    db.session.commit()
    post_event(client, event("checkout.session.completed", checkout_session(attempt)))
    job = jobs_by_id(build_scheduler(app_ctx))["outbox.send"]

    job.func(*job.args, **job.kwargs)  # what the scheduler calls on each tick

    email = db.session.scalars(select(OutboxEmail)).one()
    db.session.refresh(email)
    assert email.status is EmailStatus.SENT
    assert [m.rcpt_tos for m in messages] == [["ada@example.com"]]


def test_failing_job_is_logged_and_the_next_job_still_runs(app_ctx, caplog):
    ran = []

    def broken_job():
        db.session.execute(text("SELECT * FROM no_such_table"))  # also leaves the transaction failed
        return {}

    def next_job():
        ran.append(db.session.execute(text("SELECT count(*) FROM campaigns")).scalar_one())
        return {"sent": 0}

    run_job(app_ctx, broken_job)  # does not raise
    run_job(app_ctx, next_job)

    assert ran == [1]  # the database is usable again: the failed run was rolled back
    failure = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failure] == ["job broken_job failed"]
    assert failure[0].exc_info is not None  # with the traceback, for whoever reads the log


def test_job_that_did_something_is_logged_with_its_counts(app_ctx, caplog):
    caplog.set_level(logging.INFO, logger="donations.scheduler")

    def busy_job():
        return {"sent": 2, "retry": 0, "failed": 0}

    def idle_job():
        return {"sent": 0, "retry": 0, "failed": 0}

    run_job(app_ctx, busy_job)
    run_job(app_ctx, idle_job)

    messages = [r.getMessage() for r in caplog.records if r.name == "donations.scheduler"]
    assert messages == ["busy_job: {'sent': 2, 'retry': 0, 'failed': 0}"]
