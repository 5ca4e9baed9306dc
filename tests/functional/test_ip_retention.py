"""IP retention: the hourly job privacy.ip_retention forgets hashed client addresses older than
IP_RETENTION_DAYS in checkout attempts, staff sessions and the audit log, and keeps the newer ones."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from donations.checkout.models import CheckoutAttempt
from donations.db import now_utc
from donations.extensions import db
from donations.scheduler import build_scheduler, run_job
from donations.security.privacy import clear_old_ip_hashes
from donations.staff.auth import create_user
from donations.staff.models import AuditEntry, Role, StaffSession
from tests.factories import make_attempt

HASH = "f" * 64


@pytest.fixture
def addresses(app_ctx):
    """One row of each kind 40 days old and one 2 days old, all with a hashed address."""
    now = now_utc()
    user = create_user("ops@example.org", Role.ADMIN, "a long enough password")
    rows = {}
    for age in (40, 2):
        attempt = make_attempt(email=f"reader{age}@example.com")
        attempt.created_at, attempt.ip_hash = now - timedelta(days=age), HASH
        session = StaffSession(id=f"sid{age}", user_id=user.id, created_at=now - timedelta(days=age),
                               last_seen_at=now - timedelta(days=age), ip_hash=HASH)
        entry = AuditEntry(action="sign_in", actor_id=user.id, at=now - timedelta(days=age), ip_hash=HASH,
                           detail={"kept": True})
        db.session.add_all([session, entry])
        rows[age] = (attempt.id, session.id, entry)
    db.session.commit()
    return rows


def hashes(rows, age):
    attempt_id, session_id, entry = rows[age]
    db.session.expire_all()
    return (db.session.get(CheckoutAttempt, attempt_id).ip_hash, db.session.get(StaffSession, session_id).ip_hash,
            db.session.get(AuditEntry, entry.id).ip_hash)


def test_addresses_older_than_the_retention_are_forgotten_newer_ones_kept(app_ctx, addresses):
    assert app_ctx.config["IP_RETENTION_DAYS"] == 30

    counts = clear_old_ip_hashes()
    db.session.commit()

    assert counts == {"checkout_attempts": 1, "staff_sessions": 1, "audit_entries": 1}
    assert hashes(addresses, 40) == (None, None, None)
    assert hashes(addresses, 2) == (HASH, HASH, HASH)
    entry = db.session.get(AuditEntry, addresses[40][2].id)
    assert (entry.action, entry.detail) == ("sign_in", {"kept": True})  # only the address went
    assert clear_old_ip_hashes() == {"checkout_attempts": 0, "staff_sessions": 0, "audit_entries": 0}


def test_the_retention_period_is_configurable(app_ctx, addresses, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "IP_RETENTION_DAYS", 1)

    clear_old_ip_hashes()

    assert hashes(addresses, 2) == (None, None, None)


def test_the_job_is_registered_hourly_and_clears_through_the_scheduler(app_ctx, addresses):
    job = {j.id: j for j in build_scheduler(app_ctx).get_jobs()}["privacy.ip_retention"]
    assert job.trigger.interval == timedelta(hours=1)

    run_job(app_ctx, clear_old_ip_hashes, "privacy.ip_retention")

    assert hashes(addresses, 40) == (None, None, None)
    assert hashes(addresses, 2) == (HASH, HASH, HASH)
