"""Two hosts behind a load balancer: two web processes and two schedulers against one PostgreSQL (issue 9).

A reader gives monthly through host A and pays on host B's sandbox checkout; the sandbox renews the gift;
the receipts go out through a real SMTP server on loopback. However the requests are spread and whichever
scheduler leads, each payment is one donation with one receipt, and each job runs once per tick, from the
leader only. When the leader is killed the standby takes over, and the next renewal's receipt still goes
out once.
"""
from __future__ import annotations

import csv
import io
import os
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from donations.db import now_utc
from donations.extensions import db
from donations.job_runs import JobRun
from donations.leader import current_holder
from donations.ledger.models import Donation, DonationStatus
from donations.mail.models import OutboxEmail
from donations.staff.models import Role
from tests.conftest import POSTGRES_URL
from tests.functional.helpers import hidden_value
from tests.process_helpers import LIVE_WEBHOOK_SECRET, ROOT, LiveApp, ProcessGroup
from tests.slow.conftest import wait_for_backends
from tests.staff_helpers import PASSWORD, make_user

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: What the load balancer's address is; the hosts put it in their redirects, the test sends each path to a host.
PUBLIC_URL = "http://donations.test"
TICK = 1.0  # every job, every second (SCHEDULER_TICK_SECONDS)
READER = "reader@example.com"
ACCOUNTANT = "accountant@publisher.example"


def shared_environ(smtp_port: int) -> dict[str, str]:
    """What every host and scheduler is given alike, as a deployment's environment file."""
    return {
        "PUBLIC_URL": PUBLIC_URL,
        "SECRET_KEY": "two-hosts-share-this-secret-key-" + "x" * 16,  # a session started on A is read on B
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "MAIL_FROM": "donations@donations.test",
        "FORM_MIN_SECONDS": "0",
        "OUTBOX_INTERVAL_SECONDS": "1",
        "SCHEDULER_TICK_SECONDS": str(TICK),
        "SCHEDULER_STANDBY_POLL_SECONDS": "0.5",
        "SCHEDULER_HEARTBEAT_SECONDS": "0.5",
        "SCHEDULER_LEADER_TIMEOUT_SECONDS": "2",
        "EXPORT_INTERVAL_SECONDS": "1",
        "EXPORT_DIRECT_MAX_ROWS": "-1",  # every export from /staff/reports goes to the scheduler
    }


def process_environ(extra: dict[str, str], application_name: str) -> dict[str, str]:
    """The environment LiveApp gives its process, for the scheduler and CLI processes too."""
    url = make_url(POSTGRES_URL).update_query_dict({"application_name": application_name})
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "SMTP_", "FLASK_")) and k not in ("DATABASE_URL", "DONATIONS_ENV")}
    env.update({"DATABASE_URL": url.render_as_string(hide_password=False),
                "STRIPE_WEBHOOK_SECRET": LIVE_WEBHOOK_SECRET, "DONATIONS_ENV": "development",
                "PYTHONUNBUFFERED": "1", **extra})
    return env


class Scheduler(ProcessGroup):
    """`flask --app app scheduler run` in a process group of its own."""

    STOP_SECONDS = 15

    def __init__(self, extra: dict[str, str], log_path: Path, export_dir: Path):
        self.application_name = f"donations-sched-{secrets.token_hex(4)}"
        self.log_path = log_path
        self.export_dir = export_dir  # this host's own disk
        extra = {**extra, "EXPORT_DIR": str(export_dir)}
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "scheduler", "run"],
            cwd=ROOT, env=process_environ(extra, self.application_name), stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid



class Balancer:
    """A reader's browser behind the load balancer: one cookie jar, each request sent to the host named."""

    def __init__(self, hosts: dict[str, LiveApp]):
        self.hosts = hosts
        self.browser = requests.Session()

    def url(self, host: str, path: str) -> str:
        return f"http://127.0.0.1:{self.hosts[host].port}{path.removeprefix(PUBLIC_URL)}"

    def get(self, host: str, path: str) -> requests.Response:
        return self.browser.get(self.url(host, path), allow_redirects=False, timeout=30)

    def post(self, host: str, path: str, data: dict) -> requests.Response:
        return self.browser.post(self.url(host, path), data=data, allow_redirects=False, timeout=30)


def poll(what: str, check, timeout: float = 30, logs=()):
    """Call ``check`` until it returns something true; fail with the processes' logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in logs)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")
        time.sleep(0.1)


def holder(app) -> str | None:
    with app.app_context():
        value = current_holder(db.session)
        db.session.rollback()
        return value


def job_runs(app) -> list[JobRun]:
    with app.app_context():
        runs = db.session.scalars(select(JobRun).order_by(JobRun.job_id, JobRun.started_at)).all()
        db.session.expunge_all()
        return runs


def ledger(app) -> dict:
    with app.app_context():
        def count(model, *where):
            return db.session.scalar(select(func.count()).select_from(model).where(*where))

        result = {"donations": count(Donation),
                  "succeeded": count(Donation, Donation.status == DonationStatus.SUCCEEDED),
                  "receipts": count(OutboxEmail, OutboxEmail.template == "receipt"),
                  "receipts_sent": count(OutboxEmail, OutboxEmail.template == "receipt",
                                         OutboxEmail.sent_at.is_not(None))}
        db.session.rollback()
        return result


def assert_one_receipt_email_per_donation(app, messages: list, expected: int) -> None:
    """The SMTP server got one email per donation: each outbox row's Message-ID once, each receipt number once."""
    received = [message_from_bytes(m.content) for m in messages]
    assert all(m.rcpt_tos == [READER] for m in messages)
    with app.app_context():
        outbox = set(db.session.scalars(select(OutboxEmail.message_id).where(OutboxEmail.template == "receipt")))
        numbers = list(db.session.scalars(select(Donation.receipt_number)))
        db.session.rollback()
    assert sorted(r["Message-ID"] for r in received) == sorted(outbox) and len(outbox) == expected
    assert len(numbers) == expected and None not in numbers
    bodies = [part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")
              for r in received for part in r.walk() if part.get_content_type() == "text/plain"]
    for number in numbers:
        assert sum(number in body for body in bodies) == 1, f"receipt {number} was not sent exactly once"


def assert_each_job_once_per_tick(runs: list[JobRun]) -> None:
    """No job ran twice for one slot: runs of a job never overlap, are never bunched within one tick, and are
    no more than one a tick over the time they span (APScheduler fires on fixed slots; a start is late by at
    most the time to write its run row, well under half a tick here)."""
    by_job = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    for job_id, job_runs_ in by_job.items():
        for earlier, later in zip(job_runs_, job_runs_[1:]):
            gap = (later.started_at - earlier.started_at).total_seconds()
            assert gap >= TICK / 4, f"{job_id} ran twice in one tick: {earlier.started_at} and {later.started_at}"
            if earlier.finished_at is not None:
                assert earlier.finished_at <= later.started_at, f"two runs of {job_id} overlapped"
        span = (job_runs_[-1].started_at - job_runs_[0].started_at).total_seconds()
        assert len(job_runs_) <= span / TICK + 1.5, f"{job_id}: {len(job_runs_)} runs in {span:.1f}s"


def renew(extra: dict[str, str], days: int) -> str:
    """`flask sandbox advance`: Stripe's clock moves on and the monthly gift renews."""
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "sandbox", "advance", "--days", str(days)],
                          cwd=ROOT, env=process_environ(extra, f"donations-cli-{secrets.token_hex(4)}"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def staff_rows(postgres, committing_app):
    """Removes the staff user, their session, audit entries and export jobs (and files) the test commits; asked
    for before ``cluster``, so that the processes are stopped first."""
    yield
    with committing_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_entries, staff_sessions, staff_users CASCADE"))


@pytest.fixture
def cluster(postgres, committing_app, smtp_server, tmp_path):
    """Two web hosts and two schedulers, stopped (before committing_app empties the tables) at the end."""
    _, smtp_port, messages = smtp_server
    extra = shared_environ(smtp_port)
    webs: list[LiveApp] = []
    schedulers: list[Scheduler] = []
    try:
        for name in ("a", "b"):
            webs.append(LiveApp(POSTGRES_URL, tmp_path / f"web-{name}.log", environ=extra, server="gunicorn"))
        for name in ("1", "2"):
            schedulers.append(Scheduler(extra, tmp_path / f"scheduler-{name}.log", tmp_path / f"exports-{name}"))
        for web in webs:
            web.wait_until_ready(60)
        yield {"a": webs[0], "b": webs[1]}, schedulers, messages, extra
    finally:
        for proc in [*schedulers, *webs]:
            proc.stop()
        for proc in [*schedulers, *webs]:
            wait_for_backends(committing_app, proc, count=0, terminate_after=5)


def test_two_hosts_and_two_schedulers_book_each_payment_once_and_send_each_receipt_once(staff_rows, cluster,
                                                                                            committing_app):
    hosts, schedulers, messages, extra = cluster
    logs = [*hosts.values(), *schedulers]
    by_pid = {f":{s.pid}": s for s in schedulers}

    def leader() -> Scheduler | None:
        name = holder(committing_app)
        return next((s for suffix, s in by_pid.items() if name and name.endswith(suffix)), None)

    first_leader = poll("one scheduler to lead", leader, logs=logs)
    standby = next(s for s in schedulers if s is not first_leader)
    poll("the standby to wait", lambda: "standby:" in standby.log(), logs=logs)

    # The reader: the form on host A, the sandbox checkout on host B, the thanks on host A again.
    lb = Balancer(hosts)
    form = lb.get("a", "/donate").text
    answer = lb.post("a", "/donate", {
        "csrf_token": hidden_value(form, "csrf_token"), "token": hidden_value(form, "token"),
        "campaign": "default", "amount": "10.00", "custom_amount": "", "currency": "EUR", "frequency": "monthly",
        "email": READER, "name": "Ada Reader", "article_url": "https://publisher.example/news/1"})
    assert answer.status_code == 303, answer.text[:2000]
    checkout = answer.headers["Location"]
    assert checkout.startswith(f"{PUBLIC_URL}/sandbox/checkout/")
    page = lb.get("b", checkout)
    assert page.status_code == 200 and "every month" in page.text
    paid = lb.post("b", checkout, {"csrf_token": hidden_value(page.text, "csrf_token"),
                                   "card_number": "4242 4242 4242 4242"})
    assert paid.status_code == 303, paid.text[:2000]
    thanks = lb.get("a", paid.headers["Location"])
    assert thanks.status_code == 200 and 'data-status="succeeded"' in thanks.text

    poll("the first receipt", lambda: len(messages) >= 1, logs=logs)
    assert "1 invoice.paid" in renew(extra, days=32)
    poll("the renewal's receipt", lambda: len(messages) >= 2, logs=logs)

    # A few more ticks of the outbox: nothing more is sent.
    seen = len(job_runs(committing_app))
    poll("more job runs", lambda: len(job_runs(committing_app)) >= seen + 3 * 9, logs=logs)
    assert ledger(committing_app) == {"donations": 2, "succeeded": 2, "receipts": 2, "receipts_sent": 2}
    assert_one_receipt_email_per_donation(committing_app, messages, 2)

    runs = job_runs(committing_app)
    assert {run.process for run in runs} == {holder(committing_app)}, "only the leader runs jobs"
    assert {run.job_id for run in runs} >= {"outbox.send", "payments.sync_events", "ledger.books"}
    assert_each_job_once_per_tick(runs)

    # The leader dies mid-flight; the standby takes over, and the next renewal's receipt still goes out once.
    first_leader.kill9()
    killed_at = now_utc()
    assert poll("the standby to take over", lambda: leader() is standby, logs=logs)
    assert "1 invoice.paid" in renew(extra, days=31)
    poll("the second renewal's receipt", lambda: len(messages) >= 3, logs=logs)
    seen = len(job_runs(committing_app))
    poll("more job runs", lambda: len(job_runs(committing_app)) >= seen + 3 * 9, logs=logs)

    assert ledger(committing_app) == {"donations": 3, "succeeded": 3, "receipts": 3, "receipts_sent": 3}
    assert_one_receipt_email_per_donation(committing_app, messages, 3)
    runs = job_runs(committing_app)
    new_leader = holder(committing_app)
    before = [run for run in runs if run.process != new_leader]
    after = [run for run in runs if run.process == new_leader]
    assert {run.process for run in before} == {f"{new_leader.rsplit(':', 1)[0]}:{first_leader.pid}"}
    assert after and all(run.started_at >= killed_at - timedelta(seconds=1) for run in after)
    assert_each_job_once_per_tick(before)
    assert_each_job_once_per_tick(after)

    # An accountant asks for an export on host A; the new leader writes it; host B serves the download. The
    # file is in PostgreSQL: neither scheduler host keeps a copy on its disk.
    make_user(committing_app, Role.ACCOUNTANT, ACCOUNTANT, PASSWORD)
    accountant = Balancer(hosts)
    login = accountant.get("a", "/staff/login").text
    signed = accountant.post("a", "/staff/login", {"csrf_token": hidden_value(login, "csrf_token"),
                                                   "email": ACCOUNTANT, "password": PASSWORD})
    assert signed.status_code == 303, signed.text[:2000]
    reports = accountant.get("a", "/staff/reports").text
    today = now_utc().date()
    queued = accountant.post("a", "/staff/reports", {
        "csrf_token": hidden_value(reports, "csrf_token"), "kind": "donations", "format": "csv",
        "start": (today - timedelta(days=7)).isoformat(), "end": (today + timedelta(days=100)).isoformat()})
    assert queued.status_code == 303, queued.text[:2000]
    job = urlsplit(queued.headers["Location"]).path

    state = poll("the export job", lambda: (s := accountant.get("b", f"{job}/status").json())["status"] == "done"
                 and s, logs=logs)
    download = accountant.get("b", state["download_url"])

    assert download.status_code == 200, download.text[:2000]
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert len(rows) == 3 and {row["amount"] for row in rows} == {"10.00"}
    assert [path for s in schedulers for path in s.export_dir.glob("*")] == []
    assert state["rows_done"] == state["rows_total"] == 3
