"""Annual donation statements: one per supporter and fiscal year, numbered without gaps, content frozen at issue."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import now_utc
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
