"""Every scheduled job, registered in one place. Runs in its own process: `flask --app app scheduler run`.

However many such processes run, one leads and runs the jobs; the others wait as standbys (donations.leader).
Each run of each job is recorded (donations.job_runs) and shown on /staff/jobs.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from .extensions import db
from .job_runs import RunOutcome, close_orphans, prune_runs, record_finish, record_start, short_error, this_process
from .ledger.jobs import settle_books
from .mail.sender import send_due
from .payments.sync import sync_events
from .reports.jobs import run_exports
from .security.jobs import check_attack_mode
from .reports.jobs import send_annual_statements, send_scheduled_reports
from .security.privacy import clear_old_ip_hashes
from .staff.jobs import snapshot_dashboard

log = logging.getLogger(__name__)

JOB_DEFAULTS = {
    "coalesce": True,  # a backlog of missed runs becomes one run
    "max_instances": 1,  # never two runs of one job at once
    "misfire_grace_time": None,  # however late, the job still runs: the outbox is never skipped
}


@dataclass(frozen=True)
class Job:
    """A job as registered: its APScheduler trigger, and its schedule in words for /staff/jobs."""

    id: str
    name: str
    func: Callable[[], dict]
    trigger: str
    trigger_args: dict[str, Any] = field(default_factory=dict)
    schedule: str = ""


def registered_jobs(config) -> list[Job]:
    """Every job, in the order /staff/jobs lists them. With SCHEDULER_TICK_SECONDS set (tests only) every
    job, cron ones included, runs on that interval instead, so that a test sees many runs in seconds."""
    outbox, exports = config["OUTBOX_INTERVAL_SECONDS"], config["EXPORT_INTERVAL_SECONDS"]
    sync = config["STRIPE_SYNC_INTERVAL_SECONDS"]
    jobs = [
        Job("outbox.send", "Send due emails", send_due, "interval", {"seconds": outbox}, f"every {outbox} s"),
        Job("ledger.books", "Fees, refunds and payouts from Stripe's balance", settle_books,
            "interval", {"minutes": 5}, "every 5 min"),
        # Hourly: reports are due from a whole hour on; a run that is missed or late catches up (JOB_DEFAULTS).
        Job("reports.scheduled", "Queue the scheduled email reports", send_scheduled_reports,
            "cron", {"minute": 0}, "hourly, on the hour"),
        # Daily, early in the UTC morning; the job itself knows whether statements are due.
        Job("reports.annual_statements", "Issue annual donation statements", send_annual_statements,
            "cron", {"hour": 5, "minute": 30}, "daily at 05:30 UTC"),
        Job("reports.exports", "Write the exports asked for on /staff/reports", run_exports,
            "interval", {"seconds": exports}, f"every {exports} s"),
        # Gifts whose webhook never arrived are in the books within one interval.
        Job("payments.sync_events", "Book Stripe events whose webhook never arrived", sync_events,
            "interval", {"seconds": sync}, f"every {sync} s"),
        Job("security.attack_mode", "Switch attack mode on while declined or abandoned checkouts spike",
            check_attack_mode, "interval", {"minutes": 1}, "every minute"),
        Job("scheduler.prune_runs", "Delete job runs older than JOB_RUNS_KEEP_DAYS", prune_runs,
            "interval", {"hours": 1}, "hourly"),
        Job("privacy.ip_retention", "Forget hashed client addresses older than IP_RETENTION_DAYS",
            clear_old_ip_hashes, "interval", {"hours": 1}, "hourly"),
        # Hourly, so that the day's snapshot is taken soon after midnight UTC, or soon after a failed run.
        Job("staff.dashboard_snapshot", "Take the dashboard's snapshot of the days before today (UTC)",
            snapshot_dashboard, "cron", {"minute": 5}, "hourly at :05; once a day"),
    ]
    tick = config.get("SCHEDULER_TICK_SECONDS")
    if tick:
        jobs = [Job(j.id, j.name, j.func, "interval", {"seconds": tick}, f"every {tick:g} s (SCHEDULER_TICK_SECONDS)")
                for j in jobs]
    return jobs


def run_job(app: Flask, job: Callable[[], dict], job_id: str | None = None) -> None:
    """Run one job inside an app context and record the run; a failure is logged and the next run goes on.

    The run is written before the job starts and finished after the job's own transaction has ended, each
    time in a short transaction of its own, so a job that rolls back (or a process that dies mid-run)
    still leaves its run on /staff/jobs.
    """
    job_id = job_id or job.__name__
    with app.app_context():
        try:
            run_id = record_start(job_id)
        except Exception:  # the database may be down; the job will find out for itself
            db.session.rollback()
            log.exception("could not record the start of %s", job_id)
            run_id = None
        outcome, counts, error = RunOutcome.OK, None, None
        try:
            counts = job()
            db.session.commit()  # whatever the job left open ends before its run is marked done
            if counts and any(counts.values()):
                log.info("%s: %s", job.__name__, counts)
        except Exception as exc:
            db.session.rollback()
            log.exception("job %s failed", job.__name__)
            outcome, error = RunOutcome.FAILED, short_error(exc)
        if run_id is not None:
            try:
                record_finish(run_id, outcome, counts, error)
            except Exception:
                log.exception("could not record the end of %s", job_id)


def build_scheduler(app: Flask) -> BackgroundScheduler:
    """The scheduler with every job added, not started (run_scheduler starts it while this process leads)."""
    # APScheduler logs every run at INFO; our jobs log what they did, so keep its lines for problems.
    for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # SQLite has one writer at a time: jobs in parallel threads would only fight over it ("database is locked").
    threads = 1 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else 10
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults=JOB_DEFAULTS, daemon=True,
                                    executors={"default": ThreadPoolExecutor(threads)})
    for job in registered_jobs(app.config):
        scheduler.add_job(run_job, job.trigger, args=[app, job.func, job.id], id=job.id, name=job.name,
                          **job.trigger_args)
    return scheduler


def run_scheduler(app: Flask, stop: threading.Event, lease=None,
                  scheduler_factory: Callable[[Flask], BackgroundScheduler] = build_scheduler) -> None:
    """Lead or stand by until ``stop`` is set.

    A standby asks for the lock every SCHEDULER_STANDBY_POLL_SECONDS. The leader runs the jobs and checks
    every SCHEDULER_HEARTBEAT_SECONDS that it still holds the lock; when it does not (its database
    connection was lost, or on SQLite its heartbeat went stale and another took over), it stops its jobs,
    waiting for the running ones to end, and stands by again, so that this process never starts a job
    while another may lead. (A run already in progress cannot be stopped from outside; the jobs are safe
    if one overlaps: they claim their work with conditional UPDATEs and unique keys.)
    """
    from .leader import make_lease

    lease = lease or make_lease(app, this_process())
    me = lease.me
    poll = app.config["SCHEDULER_STANDBY_POLL_SECONDS"]
    heartbeat = app.config["SCHEDULER_HEARTBEAT_SECONDS"]
    standing_by = False
    try:
        while not stop.is_set():
            if not lease.acquire():
                lease.note_standby()
                if not standing_by:
                    log.info("standby: %s waits for the scheduler lock (another scheduler leads); "
                             "asking every %g s", me, poll)
                    standing_by = True
                stop.wait(poll)
                continue
            if lease.previous and lease.previous != me:
                log.info("took over: %s is the leader now (the lock was %s's)", me, lease.previous)
            else:
                log.info("leader: %s holds the scheduler lock and runs the jobs", me)
            standing_by = False
            with app.app_context():
                try:
                    closed = close_orphans(me)
                except Exception:  # the record is for staff to read; a failure here must not stop the jobs
                    log.exception("could not close the runs left by an earlier scheduler")
                    closed = 0
            if closed:
                log.warning("leader: %s closed %s run(s) an earlier scheduler left running", me, closed)
            scheduler = scheduler_factory(app)
            scheduler.start()
            try:
                while not stop.wait(heartbeat):
                    if not lease.renew():
                        log.warning("lost the lock: %s stops its jobs and stands by", me)
                        break
            finally:
                scheduler.shutdown(wait=True)
            # Stand by for a whole poll first: a standby that saw the lock free gets it, rather than the
            # process whose connection just failed taking it straight back.
            stop.wait(poll)
    finally:
        lease.release()
        log.info("scheduler %s stopped", me)
