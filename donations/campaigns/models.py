"""The ask: copy and preset amounts as data, editable without a deploy."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from ..db import enum_column, now_utc
from ..extensions import db
from ..ledger.models import Frequency


class Campaign(db.Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    headline: Mapped[str] = mapped_column(String(200))
    #: May contain ``{publication}``, replaced by PUBLICATION_NAME when shown.
    body: Mapped[str] = mapped_column(Text)
    button_label: Mapped[str] = mapped_column(String(80))
    #: Shown in place of the ask to a reader who has given from this browser.
    thank_you: Mapped[str] = mapped_column(
        Text, server_default="Thank you for supporting our work. Readers like you keep it going."
    )
    #: ``{frequency: {currency: [minor units, ...]}}``; a frequency's presets are never derived from another's.
    presets: Mapped[dict[str, dict[str, list[int]]]] = mapped_column(JSON)
    default_frequency: Mapped[Frequency] = mapped_column(enum_column(Frequency, "frequency"))
    default_currency: Mapped[str] = mapped_column(String(3), default="EUR", server_default="EUR")
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    def body_for(self, publication: str) -> str:
        return self.body.replace("{publication}", publication)

    def preset_amounts(self, frequency: Frequency | str, currency: str) -> list[int]:
        return list(self.presets.get(str(frequency), {}).get(currency, []))
