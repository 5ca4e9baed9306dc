"""Defects a review of the scheduler and fault-tolerance change found, each kept as the test that showed it:
the sync reads on from where it left off, a sender whose claim passed on does not send, a refused sender
fails nothing for good, a full connection pool is a 503, and a new leader closes its predecessor's runs."""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from donations.db import now_utc
from donations.extensions import db
from donations.job_runs import JobRun, RunOutcome
from donations.leader import LOCK_NAME, SchedulerLock, SQLiteLease
from donations.mail import sender as sender_module
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import CLAIM, send_due
from donations.payments.sync import MARGIN, sync_events
from donations.scheduler import run_scheduler
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.functional.test_outbox_concurrency import queue_emails
from tests.functional.test_stripe_sync import donations_of, missed_gift, stripe_events  # noqa: F401 (fixture)
from tests.staff_helpers import in_app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def message_ids(envelopes) -> list[str]:
    return [email.message_from_bytes(m.content, policy=email.policy.default)["Message-ID"].strip()
            for m in envelopes]


# --- 1. The sync job looks back only MARGIN (1 h) before the newest stored event ----------------------------


def test_a_gift_missed_more_than_an_hour_before_a_later_webhook_is_booked_by_the_job(app_ctx, client, stripe_events):
    # The endpoint was off for two hours (a migration): the gift made then never arrived. Then the endpoint is
    # back and the next gift's webhook is delivered before the sync job's next run.
    missed = missed_gift(stripe_events, email="missed@example.com", ago=2 * 3600)
    attempt = make_attempt(email="later@example.com")
    db.session.commit()
    later = event("checkout.session.completed", checkout_session(attempt), created=int(time.time()))
    assert post_event(client, later).status_code == 200
    stripe_events.events.append(later)
    assert missed["created"] < later["created"] - MARGIN.total_seconds()

    sync_events()

    assert donations_of(missed) == 1  # today: 0, and no later run ever asks Stripe that far back


# --- 2. A claim that runs out while its sender still works: the email is sent twice, uncounted ---------------


def test_emails_of_a_batch_that_outlives_its_claim_are_sent_once_or_counted(committing_app, monkeypatch):
    from aiosmtpd.controller import Controller

    received: list = []
    first_held, release = threading.Event(), threading.Event()

    class SlowServer:
        """Takes its time over the first message, as a loaded or tarpitting server does."""

        async def handle_DATA(self, server, session, envelope):
            if not first_held.is_set():
                first_held.set()
                while not release.is_set():
                    await asyncio.sleep(0.02)
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(SlowServer(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setitem(committing_app.config, "SMTP_URL", f"smtp://127.0.0.1:{port}")
        queue_emails(committing_app, 3)
        start = now_utc()
        results: dict = {}

        def first_sender():
            with committing_app.app_context():
                results["a"] = send_due(start)

        a = threading.Thread(target=first_sender)
        a.start()
        assert first_held.wait(15)
        # The first sender is still on its first email when its claim runs out; a second sender runs.
        with committing_app.app_context():
            results["b"] = send_due(start + CLAIM + timedelta(seconds=1))
        release.set()
        a.join(30)

        with committing_app.app_context():
            counted = db.session.scalar(select(func.sum(OutboxEmail.possible_duplicates)))
        ids = message_ids(received)
        assert len(ids) - len(set(ids)) <= counted, (results, ids, counted)
    finally:
        release.set()
        controller.stop()


# --- 3. A 5xx answer to MAIL FROM is about the sender, not the message: the whole outbox fails -----------------


def test_a_server_refusing_the_sender_does_not_fail_every_email_for_good(client, monkeypatch):
    from aiosmtpd.controller import Controller

    class NeedsAuth:
        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            return "530 5.7.0 Authentication required"

    port = free_port()
    controller = Controller(NeedsAuth(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = client.application
        monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{port}")
        queue_emails(app, 3)
        with in_app(app):
            counts = send_due()
            statuses = list(db.session.scalars(select(OutboxEmail.status)))
    finally:
        controller.stop()

    # Today: {"sent": 0, "retry": 0, "failed": 3}, all three FAILED after one run, each to be resent by hand.
    assert counts["failed"] == 0 and statuses == [EmailStatus.PENDING] * 3, (counts, statuses)


# --- 4. The database pool exhausted under a burst: 500, not 503 -------------------------------------------


def test_no_database_connection_free_in_time_is_answered_503(app_ctx, client, monkeypatch):
    attempt = make_attempt()
    db.session.commit()

    def pool_exhausted(event):
        raise PoolTimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00")

    monkeypatch.setattr("donations.payments.webhooks.receive_event", pool_exhausted)
    response = post_event(client, event("checkout.session.completed", checkout_session(attempt)))

    assert response.status_code == 503


# --- 5. A run whose process died stays 'running' for ever -----------------------------------------------

class _NoJobs:
    """The leader loop's scheduler, without jobs: this test is about what the new leader does on taking over."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def start(self):
        self.stop.set()

    def shutdown(self, wait=True):
        pass



def test_the_new_leader_closes_the_runs_its_dead_predecessor_left_running(app_ctx, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "SCHEDULER_HEARTBEAT_SECONDS", 0.01)
    monkeypatch.setitem(app_ctx.config, "SCHEDULER_STANDBY_POLL_SECONDS", 0.01)
    long_ago = now_utc() - timedelta(hours=2)
    db.session.add(SchedulerLock(name=LOCK_NAME, holder="gone:1", acquired_at=long_ago, heartbeat_at=long_ago))
    db.session.add(JobRun(job_id="outbox.send", started_at=long_ago, outcome=RunOutcome.RUNNING, process="gone:1"))
    db.session.commit()
    stop = threading.Event()

    run_scheduler(app_ctx, stop, lease=SQLiteLease("new:2", 30), scheduler_factory=lambda app: _NoJobs(stop))

    db.session.expire_all()
    assert db.session.scalar(select(SchedulerLock.holder)) is None  # it led, then stopped cleanly
    [run] = db.session.scalars(select(JobRun)).all()
    assert run.outcome is not RunOutcome.RUNNING and run.finished_at is not None
