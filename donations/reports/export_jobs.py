"""Scheduled work of the reports package: the background exports asked for on /staff/reports."""
from __future__ import annotations

from .operations import claim_next, delete_expired_files, run_export


def run_exports() -> dict[str, int]:
    """Delete export files past their day, then write every queued export, one at a time, each claimed
    atomically so that two scheduler processes never write the same one."""
    counts = {"deleted": delete_expired_files(), "done": 0, "failed": 0}
    while (job_id := claim_next()) is not None:
        counts["done" if run_export(job_id) else "failed"] += 1
    return counts
