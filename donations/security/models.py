"""What the defences remember between requests and processes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import now_utc
from ..extensions import db


class SecurityState(db.Model):
    """One row per switch, shared by every web process and the scheduler. ``attack_mode``: while
    ``active_until`` lies in the future, every gift needs the CAPTCHA."""

    __tablename__ = "security_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    active_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    #: When staff were last told (one alert per attack, not one a minute).
    alerted_at: Mapped[datetime | None]
    #: What the last check saw, e.g. ``41 of 52 checkouts declined or abandoned in 10 minutes``.
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)
