"""A donation attempt: what the reader asked to give, before any money moves."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import enum_column, now_utc
from ..extensions import db
from ..ledger.models import Frequency
from ..money import Money


class AttemptStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    EXPIRED = "expired"


class CheckoutAttempt(db.Model):
    """One press of "Donate". Its id is the idempotency key of every gateway call it makes."""

    __tablename__ = "checkout_attempts"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("covered_fee >= 0", name="covered_fee_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    #: Total to charge in minor units, including ``covered_fee``.
    amount: Mapped[int]
    covered_fee: Mapped[int] = mapped_column(default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[Frequency] = mapped_column(enum_column(Frequency, "frequency"))
    article_url: Mapped[str | None] = mapped_column(Text)
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_variants.id"))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    #: The reader ticked "keep me informed": where and in which words (copied to the supporter when the
    #: gift is booked); None = not ticked.
    mailing_consent_source: Mapped[str | None] = mapped_column(String(300))
    #: ``stripe`` or ``sandbox``: which gateway holds the session.
    gateway: Mapped[str] = mapped_column(String(16))
    #: Tries the payment provider answered with an error; part of the next try's idempotency key.
    gateway_tries: Mapped[int] = mapped_column(default=0, server_default="0")
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[AttemptStatus] = mapped_column(
        enum_column(AttemptStatus, "attempt_status"), default=AttemptStatus.OPEN
    )
    #: Keyed hash of the client's address (security/ip.py); cleared after IP_RETENTION_DAYS.
    ip_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: Card declines Stripe reported for this attempt's payment (payment_intent.payment_failed).
    declines: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=now_utc, index=True)

    campaign = relationship("Campaign")
    variant = relationship("CampaignVariant")

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)
