"""State the sandbox gateway keeps in place of Stripe's servers."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import now_utc
from ..extensions import db


class SandboxObject(db.Model):
    """A Stripe-shaped object (a Checkout Session, a PaymentIntent…) held by the sandbox."""

    __tablename__ = "sandbox_objects"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: The idempotency key that created it; the same key returns the same object, as on Stripe.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class EventSyncCursor(db.Model):
    """How far the missed-webhook sync has read Stripe's list of events without a failure: the next run
    starts there (less a margin), however long the scheduler or the webhook endpoint was away."""

    __tablename__ = "event_sync_cursors"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    #: Stripe's time (Unix seconds) up to which every event has been listed and booked.
    read_until: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)
