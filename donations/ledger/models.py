"""Supporters, donations, receipt numbering and the Stripe events we have stored."""
from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from typing import Any

from flask_babel import gettext
from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, event, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import enum_column, now_utc
from ..extensions import db
from ..money import Money


class Frequency(enum.StrEnum):
    ONE_OFF = "one_off"
    MONTHLY = "monthly"
    YEARLY = "yearly"

    @property
    def label(self) -> str:
        """In the language of the page or email (English outside a request and on staff pages)."""
        return {"one_off": gettext("Once"), "monthly": gettext("Monthly"), "yearly": gettext("Yearly")}[self.value]

    @property
    def interval(self) -> str | None:
        """Stripe's recurring interval (``month``, ``year``); None for a one-off gift."""
        return {"monthly": "month", "yearly": "year"}.get(self.value)

    @classmethod
    def from_interval(cls, interval: str) -> Frequency:
        return {"month": cls.MONTHLY, "year": cls.YEARLY}[interval]

    @property
    def every(self) -> str:
        """How the repetition reads after an amount: "€10.00 every month"."""
        return {"one_off": gettext("once"), "monthly": gettext("every month"),
                "yearly": gettext("every year")}[self.value]


class DonationStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    DISPUTED = "disputed"


class IllegalTransition(RuntimeError):
    """A status change that the money state machine does not allow; logged, never applied silently."""


#: Which status a donation may move to from each status. Anything else raises IllegalTransition.
DONATION_TRANSITIONS: dict[DonationStatus, frozenset[DonationStatus]] = {
    DonationStatus.PENDING: frozenset({DonationStatus.SUCCEEDED, DonationStatus.FAILED}),
    DonationStatus.SUCCEEDED: frozenset(
        {DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED, DonationStatus.DISPUTED}
    ),
    DonationStatus.PARTIALLY_REFUNDED: frozenset(
        {DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED, DonationStatus.DISPUTED}
    ),
    DonationStatus.DISPUTED: frozenset(
        {DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED}
    ),
    DonationStatus.FAILED: frozenset(),
    DonationStatus.REFUNDED: frozenset(),
}


class RecurringStatus(enum.StrEnum):
    INCOMPLETE = "incomplete"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"


#: A recurring gift's allowed moves. Canceled is final: Stripe never revives a canceled subscription.
RECURRING_TRANSITIONS: dict[RecurringStatus, frozenset[RecurringStatus]] = {
    RecurringStatus.INCOMPLETE: frozenset(
        {RecurringStatus.ACTIVE, RecurringStatus.PAST_DUE, RecurringStatus.PAUSED, RecurringStatus.CANCELED}
    ),
    RecurringStatus.ACTIVE: frozenset({RecurringStatus.PAST_DUE, RecurringStatus.PAUSED, RecurringStatus.CANCELED}),
    RecurringStatus.PAST_DUE: frozenset({RecurringStatus.ACTIVE, RecurringStatus.PAUSED, RecurringStatus.CANCELED}),
    RecurringStatus.PAUSED: frozenset({RecurringStatus.ACTIVE, RecurringStatus.PAST_DUE, RecurringStatus.CANCELED}),
    RecurringStatus.CANCELED: frozenset(),
}


class Supporter(db.Model):
    __tablename__ = "supporters"
    #: Staff search by email prefix (LIKE 'abc%') on PostgreSQL.
    __table_args__ = (
        Index("ix_supporters_email_pattern", "email", postgresql_ops={"email": "text_pattern_ops"}),
        # Search by part of a name (ILIKE '%abc%'): a pg_trgm GIN index on PostgreSQL, plain on SQLite.
        Index("ix_supporters_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Lower-cased, trimmed; one supporter per address.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: When the supporter agreed to hear about our work by email; None = no consent (never given, or withdrawn).
    mailing_consent_at: Mapped[datetime | None] = mapped_column(index=True)
    #: Where and in which words they agreed, e.g. ``donation form: Keep me informed about our work by email``.
    mailing_consent_source: Mapped[str | None] = mapped_column(String(300))
    #: When their first gift was paid (the earliest paid_at of their paid donations); None = no gift paid yet.
    #: Kept by ledger.operations.note_first_gift, so the dashboard counts new supporters with an index range
    #: instead of a minimum over every donation.
    first_gift_at: Mapped[datetime | None] = mapped_column(index=True)
    #: The language the supporter reads us in (a locale such as ``de`` or ``fr``): their receipts and other
    #: emails, and the account pages. Taken from the first gift's page, changed on the account page; None = not
    #: known (emails then follow the gift's page, else English).
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    donations: Mapped[list[Donation]] = relationship(back_populates="supporter")
    recurring_donations: Mapped[list[RecurringDonation]] = relationship(back_populates="supporter")


class RecurringDonation(db.Model):
    """A monthly or yearly gift: a Stripe subscription as the ledger knows it."""

    __tablename__ = "recurring_donations"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    attempt_id: Mapped[str | None] = mapped_column(ForeignKey("checkout_attempts.id"), unique=True)
    #: Per period, in minor units of ``currency``.
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[Frequency] = mapped_column(enum_column(Frequency, "frequency"))
    status: Mapped[RecurringStatus] = mapped_column(enum_column(RecurringStatus, "recurring_status"), index=True)
    article_url: Mapped[str | None] = mapped_column(Text)
    #: The A/B variant and the article (normalised) the first gift came from.
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_variants.id"), index=True)
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"), index=True)
    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: When a pause ends by itself (Stripe's ``pause_collection.resumes_at``).
    paused_until: Mapped[datetime | None]
    #: Stripe's time of the newest event that set ``status``; older events do not overwrite it.
    status_at: Mapped[datetime | None]
    #: Stripe's time of the newest subscription object applied (amount, interval, cancellation, pause).
    terms_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    supporter: Mapped[Supporter] = relationship(back_populates="recurring_donations")
    donations: Mapped[list[Donation]] = relationship(back_populates="recurring_donation",
                                                     order_by="Donation.paid_at")

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def is_open(self) -> bool:
        return self.status is not RecurringStatus.CANCELED

    @property
    def ends_at_period_end(self) -> bool:
        """Still open, but cancelled for the end of the period already paid for: no further payment is taken."""
        return self.cancel_at_period_end and self.is_open

    def transition(self, new: RecurringStatus) -> bool:
        """Move to ``new``; False when already there, IllegalTransition when the state machine forbids it."""
        if self.status == new:
            return False
        if new not in RECURRING_TRANSITIONS[self.status]:
            raise IllegalTransition(f"recurring donation {self.id}: {self.status.value} -> {new.value}")
        self.status = new
        return True


class Donation(db.Model):
    __tablename__ = "donations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("covered_fee >= 0", name="covered_fee_not_negative"),
        CheckConstraint("amount_refunded >= 0", name="amount_refunded_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    attempt_id: Mapped[str | None] = mapped_column(ForeignKey("checkout_attempts.id"), unique=True)
    #: The recurring gift this payment belongs to; one donation per paid invoice.
    recurring_donation_id: Mapped[int | None] = mapped_column(ForeignKey("recurring_donations.id"), index=True)
    #: What the supporter paid, in minor units of ``currency``, including any fee they chose to cover.
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    #: The part of ``amount`` that the supporter added to cover the processing fee.
    covered_fee: Mapped[int] = mapped_column(default=0, server_default="0")
    frequency: Mapped[Frequency] = mapped_column(enum_column(Frequency, "frequency"))
    status: Mapped[DonationStatus] = mapped_column(enum_column(DonationStatus, "donation_status"), index=True)
    article_url: Mapped[str | None] = mapped_column(Text)
    #: The A/B variant and the article (normalised) of the ask the reader answered.
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_variants.id"), index=True)
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"), index=True)
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    #: Stripe's fee and the net in ``settlement_currency``; unknown until the balance transaction exists.
    fee: Mapped[int | None]
    net: Mapped[int | None]
    #: The currency the money reached the Stripe balance in, and the rate from ``currency`` (decimal text,
    #: exact; None when no conversion happened).
    settlement_currency: Mapped[str | None] = mapped_column(String(3))
    exchange_rate: Mapped[str | None] = mapped_column(String(32))
    amount_refunded: Mapped[int] = mapped_column(default=0, server_default="0")
    #: When the latest refund was booked.
    refunded_at: Mapped[datetime | None]
    #: ``YYYY-NNNNNN``, gap-free per year, given when the payment succeeds.
    receipt_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    paid_at: Mapped[datetime | None] = mapped_column(index=True)
    #: The day the gift is in the books: the day it was paid (UTC), or the first open day when that day's
    #: period was closed before the gift reached us; then ``booking_note`` says so.
    booked_on: Mapped[date | None] = mapped_column(index=True)
    booking_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    supporter: Mapped[Supporter] = relationship(back_populates="donations")
    recurring_donation: Mapped[RecurringDonation | None] = relationship(back_populates="donations")
    campaign = relationship("Campaign")

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def refunded_money(self) -> Money:
        """What went back to the supporter so far."""
        return Money(self.amount_refunded, self.currency)

    def transition(self, new: DonationStatus) -> bool:
        """Move to ``new``; False when already there, IllegalTransition when the state machine forbids it."""
        if self.status == new and new is not DonationStatus.PARTIALLY_REFUNDED:
            return False
        if new not in DONATION_TRANSITIONS[self.status]:
            raise IllegalTransition(f"donation {self.id}: {self.status.value} -> {new.value}")
        self.status = new
        return True


class Refund(db.Model):
    """Money given back on a donation, one row per refund as Stripe's charge reported it, dated when booked."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    refunded_at: Mapped[datetime] = mapped_column(index=True)


class Dispute(db.Model):
    """A chargeback on a donation's payment, from Stripe's ``charge.dispute.*`` events."""

    __tablename__ = "disputes"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(64))
    #: Stripe's status: ``needs_response``, ``under_review``, ``won``, ``lost``…
    status: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class RecurringChange(db.Model):
    """One change of a recurring gift (started, status, amount, frequency, cancellation, pause), as Stripe
    reported it; the staff see them as the gift's history. Out-of-order events add their change when applied."""

    __tablename__ = "recurring_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    recurring_donation_id: Mapped[int] = mapped_column(ForeignKey("recurring_donations.id"), index=True)
    #: Stripe's time of the event that made the change.
    at: Mapped[datetime]
    what: Mapped[str] = mapped_column(String(32))
    old: Mapped[str | None] = mapped_column(String(64))
    new: Mapped[str | None] = mapped_column(String(64))


class ReceiptSequence(db.Model):
    """The last receipt number given in a year; locked while the next one is taken, so numbers have no gaps."""

    __tablename__ = "receipt_sequences"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(default=0)


class StripeEvent(db.Model):
    """Every verified event, stored once by Stripe's id before it is processed."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    api_version: Mapped[str | None] = mapped_column(String(40))
    livemode: Mapped[bool] = mapped_column(default=False)
    #: Stripe's ``created`` timestamp of the event.
    created: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=now_utc)
    processed_at: Mapped[datetime | None]
    #: What processing did: ``processed``, ``ignored: <why>``.
    outcome: Mapped[str | None] = mapped_column(Text)


class LineKind(enum.StrEnum):
    """What moved money in the Stripe balance. One Stripe balance transaction makes one or two lines:
    its amount, and its fee when it has one."""

    GIFT = "gift"
    FEE = "fee"
    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_FEE = "dispute_fee"
    DISPUTE_REVERSAL = "dispute_reversal"
    PAYOUT = "payout"
    #: A balance movement that is not about a donation (another product, a Stripe adjustment): kept, so
    #: that a payout's lines still add up, and shown so that the accountant can book it.
    OTHER = "other"


class Payout(db.Model):
    """Money Stripe sent (or failed to send) from the balance to the publisher's bank account."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_payout_id: Mapped[str] = mapped_column(String(255), unique=True)
    #: What was sent to the bank, in minor units of ``currency``.
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    #: Stripe's status: ``paid``, ``failed``, ``canceled``…
    status: Mapped[str] = mapped_column(String(32))
    failure_message: Mapped[str | None] = mapped_column(Text)
    #: Stripe's ``created`` and the day the money is expected in the bank (``arrival_date``).
    created: Mapped[datetime]
    arrival_date: Mapped[date] = mapped_column(index=True)
    #: The sum of the payout's lines except the payout itself, once they are fetched from Stripe;
    #: equal to ``amount`` when the books reconcile.
    lines_total: Mapped[int | None]
    lines_count: Mapped[int | None]
    reconciled_at: Mapped[datetime | None]
    #: Failed tries to fetch the lines, and the last error: a payout Stripe will not list is shown, and
    #: tried after the others, so it never holds them up.
    reconcile_tries: Mapped[int] = mapped_column(default=0, server_default="0")
    reconcile_error: Mapped[str | None] = mapped_column(Text)
    #: The day the payout is in the books: its arrival day, or the first open day after a closed period.
    booked_on: Mapped[date | None] = mapped_column(index=True)
    #: The payout's own balance transaction (``txn_…``), the line that takes the money to the bank.
    stripe_balance_transaction_id: Mapped[str | None] = mapped_column(String(255))
    #: Stripe's time of the newest payout object applied; older events do not overwrite it.
    status_at: Mapped[datetime | None]

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def difference(self) -> int | None:
        """What the lines add up to beyond (or short of) the bank amount; None until fetched."""
        return None if self.lines_total is None else self.lines_total - self.amount

    @property
    def bank_amount(self) -> int:
        """What reached the bank: nothing unless the payout was paid."""
        return self.amount if self.status == "paid" else 0

    @property
    def lines_money(self) -> Money | None:
        return None if self.lines_total is None else Money(self.lines_total, self.currency)

    @property
    def difference_money(self) -> Money | None:
        return None if self.difference is None else Money(self.difference, self.currency)


class LedgerLine(db.Model):
    """One money movement in the Stripe balance, as Stripe's balance transaction reports it: the books.

    Amounts are signed (into the balance is positive) in the balance's currency. Each line is made once,
    keyed by its balance transaction and part, however often or by whichever path Stripe tells us of it.
    """

    __tablename__ = "ledger_lines"
    __table_args__ = (CheckConstraint("amount <> 0", name="amount_not_zero"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``<balance transaction id>:<part>``: what makes a line unique.
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[LineKind] = mapped_column(enum_column(LineKind, "line_kind"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    #: When Stripe made the balance transaction.
    occurred_at: Mapped[datetime]
    #: The day the line is in the books: the day it occurred, or the first open day when that was closed.
    booked_on: Mapped[date] = mapped_column(index=True)
    note: Mapped[str | None] = mapped_column(Text)
    stripe_balance_transaction_id: Mapped[str] = mapped_column(String(255), index=True)
    #: The object that moved the money (``ch_…``, ``re_…``, ``dp_…``, ``po_…``).
    stripe_source_id: Mapped[str | None] = mapped_column(String(255))
    donation_id: Mapped[int | None] = mapped_column(ForeignKey("donations.id"), index=True)
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("disputes.id"))
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    payout: Mapped[Payout | None] = relationship()
    donation: Mapped[Donation | None] = relationship()

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


class ClosedPeriod(db.Model):
    """The books were closed through ``closed_through``: lines that arrive later for a day up to it are
    booked on the first open day instead, with a note, so a filed month never changes."""

    __tablename__ = "closed_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    closed_through: Mapped[date] = mapped_column(unique=True)
    closed_at: Mapped[datetime] = mapped_column(default=now_utc)
    closed_by: Mapped[str] = mapped_column(String(254))


@event.listens_for(Donation, "before_insert")
@event.listens_for(Donation, "before_update")
def _book_paid_day(mapper, connection, donation: Donation) -> None:
    """A paid donation is in the books on its paid day unless the ledger chose another (a closed period)."""
    if donation.paid_at is not None and donation.booked_on is None:
        donation.booked_on = donation.paid_at.astimezone(timezone.utc).date()


class ConsentRecord(db.Model):
    """Consent to news and mailings, given or withdrawn: when, in which words, where. Never changed,
    so the history answers "what did they agree to, and when" (GDPR art. 7(1))."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    #: ``given`` or ``withdrawn``.
    action: Mapped[str] = mapped_column(String(16))
    #: The words the supporter saw (for a withdrawal: how they withdrew).
    wording: Mapped[str] = mapped_column(Text)
    #: Where: ``donation form``, ``account page``, ``staff``, …
    source: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(default=now_utc, index=True)


class Erasure(db.Model):
    """A supporter's personal data was erased (GDPR art. 17). Only keyed hashes of what identified them are
    kept, so a later webhook or import naming the same email or Stripe customer can be recognised and
    kept from bringing the data back, without keeping the data itself."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    customer_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: ``supporter`` (from the account page) or ``staff``.
    requested_by: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    erased_at: Mapped[datetime] = mapped_column(default=now_utc)
