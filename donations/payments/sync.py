"""Catching up on webhooks that never arrived: Stripe's list of events, through the webhook's own path.

An endpoint switched off during a migration, a deploy, a crash between commit and answer: Stripe
gives up on a delivery after three days, and even before that a gift would wait for its retry.
The job asks Stripe (https://docs.stripe.com/api/events/list) for the events since where its last
complete run left off, and books each one never stored exactly as the webhook would have.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..ledger.models import StripeEvent
from .models import EventSyncCursor
from .gateway import get_gateway
from .webhooks import HANDLED_TYPES, receive_event

log = logging.getLogger(__name__)

#: How far before the newest stored event the next run looks again: events are not stored in the
#: order Stripe made them (deliveries are retried, and arrive in parallel), so an older one may be missing.
MARGIN = timedelta(hours=1)


#: Stripe keeps events for 30 days: there is nothing to ask for before that.
RETENTION = timedelta(days=30)


def default_since() -> int:
    """Where the last complete run left off, less MARGIN; before any run, STRIPE_SYNC_FIRST_DAYS back.

    Not the newest stored event: a webhook delivered after an outage would move that past the events
    the outage missed."""
    cursor = db.session.get(EventSyncCursor, 1)
    now = int(time.time())
    if cursor is None:
        return now - current_app.config["STRIPE_SYNC_FIRST_DAYS"] * 86400
    return max(cursor.read_until - int(MARGIN.total_seconds()), now - int(RETENTION.total_seconds()))


def _advance_cursor(read_until: int) -> None:
    cursor = db.session.get(EventSyncCursor, 1)
    if cursor is None:
        db.session.add(EventSyncCursor(id=1, read_until=read_until))
    elif read_until > cursor.read_until:
        cursor.read_until = read_until
    db.session.commit()


def sync_events(since: int | None = None) -> dict[str, int]:
    """Book every event Stripe made since ``since`` (a Unix time; by default see ``default_since``)
    that this app never stored, oldest first, through ``receive_event`` as the webhook does.

    Each event is committed on its own and a failing one is logged and counted, never stopping the
    others; it is tried again by the next run (or by Stripe's own retry of the webhook). When Stripe
    cannot be reached the GatewayError goes up to the caller and nothing is booked.
    Returns the counts: ``listed`` by Stripe, ``new`` (booked now), ``failed``.
    """
    scheduled = since is None
    if scheduled:
        since = default_since()
    started = int(time.time())
    events = get_gateway().list_events(since, HANDLED_TYPES)
    counts = {"listed": len(events), "new": 0, "failed": 0}
    # Stripe lists newest first; a subscription's creation must be booked before its updates.
    ordered = sorted(reversed(events), key=lambda e: e["created"])
    ids = [e["id"] for e in ordered if e["type"] in HANDLED_TYPES]
    stored = set(db.session.scalars(select(StripeEvent.id).where(
        StripeEvent.id.in_(ids), StripeEvent.processed_at.is_not(None)))) if ids else set()
    for event in ordered:
        if event["type"] not in HANDLED_TYPES or event["id"] in stored:
            continue
        try:
            outcome = receive_event(event)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("missed event %s (%s) could not be booked; the next run tries again",
                          event.get("id"), event.get("type"))
            counts["failed"] += 1
            continue
        if outcome != "duplicate":  # a webhook delivery of the same event may have won the race
            log.warning("booked event %s (%s), whose webhook never arrived: %s", event["id"], event["type"],
                        outcome)
            counts["new"] += 1
    if scheduled and not counts["failed"]:
        # Every event up to the listing's start is booked: the next run need not look further back. A run
        # with a failure leaves the cursor, so the failed event is listed (and tried) again.
        _advance_cursor(started)
    return counts
