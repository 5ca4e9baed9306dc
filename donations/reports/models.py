"""The reports package's tables: annual statements and their numbers, background export jobs, and the
schedules of the emailed reports."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import enum_column, now_utc
from ..extensions import db
from ..ledger.models import Supporter


class StatementSequence(db.Model):
    """The last statement number given in a fiscal year; locked while the next one is taken, so numbers have no gaps."""

    __tablename__ = "statement_sequences"

    fiscal_year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(default=0)


class AnnualStatement(db.Model):
    """What a supporter gave in one fiscal year, as issued to them (for their tax return)."""

    __tablename__ = "annual_statements"
    # One statement per supporter and year, however many runs of the job race.
    __table_args__ = (UniqueConstraint("supporter_id", "fiscal_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"))
    #: The calendar year the fiscal year starts in (FISCAL_YEAR_START_MONTH), as in ``export --fiscal-year``.
    fiscal_year: Mapped[int]
    #: ``S2026-000001``: gap-free per fiscal year.
    number: Mapped[str] = mapped_column(String(32), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=now_utc)
    #: Everything the document shows (issuer, supporter, lines, totals per currency, minor units), frozen at
    #: issue so that a copy years later is the same document even after refunds, renames or new settings.
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: How often staff sent it again (each a copy, marked as such), and when last.
    reissued_count: Mapped[int] = mapped_column(default=0, server_default="0")
    reissued_at: Mapped[datetime | None]

    supporter: Mapped[Supporter] = relationship()


# -- background exports ------------------------------------------------------------------------------

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
    #: Only jobs finished before the files moved into the database (export_chunks) name a file on the disk of
    #: the host that wrote it; it is deleted with the others after a day.
    file_path: Mapped[str | None] = mapped_column(Text)
    #: The finished file's size; its bytes are in export_chunks. None until done, and again once deleted.
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
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


class ExportChunk(db.Model):
    """A piece of a finished export file. The files live in PostgreSQL, which every web host shares, so a
    download works on whichever host the load balancer picks; they are deleted after EXPORT_KEEP_HOURS."""

    __tablename__ = "export_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), primary_key=True)
    #: 0, 1, 2…: the file is the chunks' data in this order.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# -- emailed reports ---------------------------------------------------------------------------------

class ReportKind(enum.StrEnum):
    MONTHLY_ACCOUNTING = "monthly_accounting"
    WEEKLY_SUPPORTERS = "weekly_supporters"

    @property
    def label(self) -> str:
        return {"monthly_accounting": "Monthly accounting report",
                "weekly_supporters": "Weekly supporter report"}[self.value]


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Every month has at least 20 working days (February of a common year has exactly 20), so days 1–20 always exist.
MAX_WORKING_DAY = 20
MAX_RECIPIENTS = 20


class ScheduleError(ValueError):
    """A report action that cannot be done; the message is shown to staff."""


class ReportSchedule(db.Model):
    """One row per report kind, seeded by the migration; staff edit it, the hourly job reads it."""

    __tablename__ = "report_schedules"
    __table_args__ = (
        CheckConstraint(f"working_day BETWEEN 1 AND {MAX_WORKING_DAY}", name="working_day_range"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("send_hour BETWEEN 0 AND 23", name="send_hour_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ReportKind] = mapped_column(enum_column(ReportKind, "report_kind"), unique=True)
    enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Lower-cased addresses, each checked by clean_email when saved.
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Monthly report: sent on the Nth working day (Monday–Friday) of the month; 1 is the first.
    working_day: Mapped[int] = mapped_column(default=1, server_default="1")
    #: Weekly report: sent on this weekday, 0 = Monday … 6 = Sunday.
    weekday: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The hour of the day (UTC) from which the report is due.
    send_hour: Mapped[int] = mapped_column(default=7, server_default="7")
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)
