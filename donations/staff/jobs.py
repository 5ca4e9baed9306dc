"""Scheduled work of the staff pages."""
from __future__ import annotations

from sqlalchemy import select

from ..db import now_utc
from ..extensions import db
from . import operations as ops
from .models import DashboardSnapshot


def snapshot_dashboard() -> dict[str, int]:
    """Take the dashboard's snapshot for today (UTC) unless it exists, and delete the older ones.

    The page is exact without it (from an older snapshot, or from the donations alone), only slower: this job
    keeps the part the page reads from the donations to today's gifts and the few booked since."""
    day = now_utc().date()
    taken = 0
    if db.session.scalar(select(DashboardSnapshot.id).where(DashboardSnapshot.day == day)) is None:
        watermark, pending = ops.snapshot_watermark()
        db.session.commit()  # releases the lock on donations at once: writers wait only for the two reads
        ops.compute_snapshot(day, watermark, pending)
        taken = 1
    deleted = ops.delete_snapshots_before(day)
    db.session.commit()
    return {"taken": taken, "deleted": deleted}
