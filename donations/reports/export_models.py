"""Background exports: one row per export a staff member asked the scheduler to prepare."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import enum_column, now_utc
from ..extensions import db


class ExportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportJob(db.Model):
    """An export file the scheduler writes (``reports.exports``); the staff watch it and download it when done."""

    __tablename__ = "export_jobs"
    __table_args__ = (CheckConstraint("format IN ('csv', 'xlsx')", name="format_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    #: The registry's kind (``donations``, ``supporters``…).
    kind: Mapped[str] = mapped_column(String(32))
    #: ExportParams.to_json(): start and end days, or a payout id.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    format: Mapped[str] = mapped_column(String(8))
    #: A CSV that starts with a UTF-8 byte order mark, for Excel.
    bom: Mapped[bool] = mapped_column(default=False, server_default=false())
    status: Mapped[ExportStatus] = mapped_column(enum_column(ExportStatus, "export_status"),
                                                 default=ExportStatus.QUEUED, index=True)
    #: The COUNT taken when the export started; ``rows_done`` catches up with it while the file is written.
    rows_total: Mapped[int | None]
    rows_done: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The finished file, under EXPORT_DIR; None until done, and again once the file is deleted after a day.
    file_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: When the file was deleted (EXPORT_KEEP_HOURS after it was finished).
    deleted_at: Mapped[datetime | None]

    requested_by = relationship("StaffUser")

    @property
    def file_name(self) -> str:
        """What the browser saves it as: ``donations-2026-03-01-2026-03-31.csv``."""
        from .registry import ExportParams

        return f"{self.kind}-{ExportParams.from_json(self.params).label()}.{self.format}"
