"""Every scheduled job, registered in one place. Runs in its own process: `flask --app app scheduler run`."""
from __future__ import annotations

import logging
from typing import Callable

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from .extensions import db
from .ledger.jobs import settle_books
from .mail.sender import send_due
from .payments.sync import sync_events
from .reports.export_jobs import run_exports
from .reports.jobs import send_annual_statements, send_scheduled_reports

log = logging.getLogger(__name__)

JOB_DEFAULTS = {
    "coalesce": True,  # a backlog of missed runs becomes one run
    "max_instances": 1,  # never two runs of one job at once
    "misfire_grace_time": None,  # however late, the job still runs: the outbox is never skipped
}


def run_job(app: Flask, job: Callable[[], dict]) -> None:
    """Run one job inside an app context; a failure is logged and the next run goes on."""
    with app.app_context():
        try:
            counts = job()
            if any(counts.values()):
                log.info("%s: %s", job.__name__, counts)
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", job.__name__)


def build_scheduler(app: Flask) -> BlockingScheduler:
    # APScheduler logs every run at INFO; our jobs log what they did, so keep its lines for problems.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    scheduler = BlockingScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS)
    scheduler.add_job(run_job, "interval", seconds=app.config["OUTBOX_INTERVAL_SECONDS"], args=[app, send_due],
                      id="outbox.send", name="Send due emails")
    scheduler.add_job(run_job, "interval", minutes=5, args=[app, settle_books],
                      id="ledger.books", name="Fees, refunds and payouts from Stripe's balance")
    # Hourly: reports are due from a whole hour on; a run that is missed or late catches up (JOB_DEFAULTS).
    scheduler.add_job(run_job, "cron", minute=0, args=[app, send_scheduled_reports],
                      id="reports.scheduled", name="Queue the scheduled email reports")
    # Daily, early in the UTC morning; the job itself knows whether statements are due.
    scheduler.add_job(run_job, "cron", hour=5, minute=30, args=[app, send_annual_statements],
                      id="reports.annual_statements", name="Issue annual donation statements")
    scheduler.add_job(run_job, "interval", seconds=app.config["EXPORT_INTERVAL_SECONDS"], args=[app, run_exports],
                      id="reports.exports", name="Write the exports asked for on /staff/reports")
    # Gifts whose webhook never arrived are in the books within one interval.
    scheduler.add_job(run_job, "interval", seconds=app.config["STRIPE_SYNC_INTERVAL_SECONDS"], args=[app, sync_events],
                      id="payments.sync_events", name="Book Stripe events whose webhook never arrived")
    return scheduler
