"""Scheduled work of the reports package: the background exports asked for on /staff/reports."""
from __future__ import annotations

import logging

from ..extensions import db
from .operations import claim_next, delete_expired_files, run_export

log = logging.getLogger(__name__)


def run_exports() -> dict[str, int]:
    """Delete export files past their day, then write every queued export, one at a time, each claimed
    atomically so that two scheduler processes never write the same one. Each export's failure is its
    own (run_export records it); a failed clean-up is logged and the exports still run."""
    try:
        deleted = delete_expired_files()
    except Exception:
        db.session.rollback()
        log.exception("expired exports not cleaned up")
        deleted = 0
    counts = {"deleted": deleted, "done": 0, "failed": 0}
    while (job_id := claim_next()) is not None:
        counts["done" if run_export(job_id) else "failed"] += 1
    return counts
