"""The ledger's business logic: turn what Stripe tells us into supporters, donations and receipts."""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..checkout.models import AttemptStatus, CheckoutAttempt
from ..db import insert_ignore, next_number, now_utc
from ..extensions import db
from ..mail import emails
from ..mail.models import OutboxEmail
from ..security import privacy
from .models import (
    Dispute,
    Donation,
    DonationStatus,
    Frequency,
    ReceiptSequence,
    RecurringChange,
    RecurringDonation,
    RecurringStatus,
    Refund,
    Supporter,
)
from .payouts import book_dispute_balances, booking_day

log = logging.getLogger(__name__)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get_or_create_supporter(email: str, name: str | None = None) -> Supporter:
    """The supporter for this address, created on first use; safe when two requests race."""
    email = normalise_email(email)
    insert_ignore(db.session, Supporter, {"email": email, "name": name}, ["email"])
    supporter = db.session.scalars(select(Supporter).where(Supporter.email == email)).one()
    if name and not supporter.name and not privacy.is_erased(supporter):
        supporter.name = name
    return supporter


def note_mailing_consent(supporter: Supporter, attempt: CheckoutAttempt) -> None:
    """Copy the reader's "keep me informed" tick from the attempt to the supporter, dated when they gave it.

    Only a tick is copied: a later gift without it leaves an earlier consent as it is (withdrawing is done
    from the account page), and an existing consent keeps its first date and words. A consent given is
    recorded (when, in which words, where) in the supporter's consent history."""
    if attempt.mailing_consent_source and supporter.mailing_consent_at is None and not privacy.is_erased(supporter):
        supporter.mailing_consent_at = attempt.created_at
        supporter.mailing_consent_source = attempt.mailing_consent_source
        source, wording = privacy.split_consent_source(attempt.mailing_consent_source)
        privacy.record_consent(supporter, "given", wording, source, attempt.created_at)


def note_language(supporter: Supporter, attempt: CheckoutAttempt) -> None:
    """The supporter's language, from the page of their first gift: their receipts and account pages follow it.
    A language they chose on their account page (or an earlier gift's) is kept."""
    if supporter.locale is None and attempt.locale and not privacy.is_erased(supporter):
        supporter.locale = attempt.locale


def next_receipt_number(year: int) -> str:
    """Take the next receipt number of ``year``.

    The counter row stays locked until the transaction ends, and rolls back with it,
    so numbers are unique and without gaps.
    """
    number = next_number(db.session, ReceiptSequence, "year", year)
    return f"{year}-{number:06d}"


#: The session's donations moved to succeeded whose receipt number is still to be taken, by donation id:
#: (donation, year, placeholder, receipt's dedupe key). Taken by number_receipts as the transaction commits.
UNNUMBERED = "receipts_to_number"

#: PostgreSQL: the year's next number, written into the donation and into its receipt email (in place of the
#: placeholder it was rendered with), in one statement: one round trip under the counter's lock, then COMMIT.
#: The number is formatted as next_receipt_number does: year, dash, at least six digits.
NUMBER_RECEIPT_SQL = text("""
WITH counter AS (
    INSERT INTO receipt_sequences AS s (year, last_number) VALUES (:year, 1)
    ON CONFLICT (year) DO UPDATE SET last_number = s.last_number + 1
    RETURNING CAST(s.year AS text) || '-' || lpad(CAST(s.last_number AS text),
                                                  greatest(6, length(CAST(s.last_number AS text))), '0') AS number
), donation AS (
    UPDATE donations SET receipt_number = counter.number FROM counter WHERE donations.id = :donation_id
    RETURNING counter.number
), receipt AS (
    UPDATE outbox_emails SET subject = replace(subject, :placeholder, counter.number),
        body_text = replace(body_text, :placeholder, counter.number),
        body_html = replace(body_html, :placeholder, counter.number)
    FROM counter WHERE outbox_emails.dedupe_key = :dedupe_key
)
SELECT number FROM donation""")


def number_receipts(session) -> None:
    """Give the donations that mark_succeeded moved to succeeded in this transaction their receipt numbers:
    the transaction's last statements, run as it commits (see _number_receipts_at_commit).

    Everything else the transaction writes is flushed first, so that from the moment the year's counter row is
    locked until the COMMIT releases it, only the numbers are written: every gift of the year waits for that
    lock, so its hold time is what bounds a renewal day's throughput."""
    pending = session.info.pop(UNNUMBERED, None)
    if not pending:
        return
    session.flush()
    # A savepoint rolled back since (an illegal transition undoes an event's changes) took its donation's move
    # to succeeded and its receipt email with it: that donation gets no number. Checked before the first number
    # is taken, since the check may read the donation again.
    due = [(donation, year, placeholder, key) for donation, year, placeholder, key in pending.values()
           if inspect(donation).persistent and donation.receipt_number is None
           and donation.status not in (DonationStatus.PENDING, DonationStatus.FAILED)]
    for donation, year, placeholder, key in due:
        if session.get_bind().dialect.name == "postgresql":
            number = session.execute(NUMBER_RECEIPT_SQL, {"year": year, "donation_id": donation.id,
                                                          "placeholder": placeholder, "dedupe_key": key}).scalar_one()
        else:  # SQLite takes one writer at a time anyway: the same writes, one statement each
            number = next_receipt_number(year)
            session.execute(update(Donation).where(Donation.id == donation.id).values(receipt_number=number)
                            .execution_options(synchronize_session=False))
            session.execute(update(OutboxEmail).where(OutboxEmail.dedupe_key == key).values(
                {column: func.replace(column, placeholder, number)
                 for column in (OutboxEmail.subject, OutboxEmail.body_text, OutboxEmail.body_html)}))
        set_committed_value(donation, "receipt_number", number)  # written already: not a change to flush


@sa_event.listens_for(Session, "before_commit")
def _number_receipts_at_commit(session) -> None:
    # before_commit runs before the commit's own flush, for a savepoint's release too: the numbers are taken
    # only when the transaction itself commits.
    if session.info.get(UNNUMBERED) and not session.in_nested_transaction():
        number_receipts(session)


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_unnumbered(session, transaction) -> None:
    if transaction.parent is None:  # rolled back (a commit has taken them already)
        session.info.pop(UNNUMBERED, None)


def record_checkout_session(session: dict[str, Any], *, paid: bool, at: datetime, failed: bool = False) -> str:
    """Book a one-off Checkout Session: create its donation, and move it to succeeded or failed.

    Idempotent and order-independent: the donation is found by the session id, a status
    never moves backwards to pending, and the receipt is queued once, on the move to succeeded.
    """
    metadata = session.get("metadata") or {}
    attempt_id = metadata.get("attempt_id")
    if not attempt_id:
        return "ignored: not ours (no attempt_id in metadata)"
    if session.get("mode") == "subscription":
        return record_subscription_checkout(session, paid=paid, at=at)
    if session.get("mode") != "payment":
        return f"ignored: mode {session.get('mode')} not handled"
    # Locking the attempt serialises every event about this gift (PostgreSQL; SQLite serialises writers anyway).
    attempt = db.session.get(CheckoutAttempt, attempt_id, with_for_update=True)
    if attempt is None:
        return "ignored: not ours (unknown attempt)"

    donation = db.session.scalars(
        select(Donation).where(Donation.stripe_checkout_session_id == session["id"])
    ).one_or_none()
    if donation is None:
        details = session.get("customer_details") or {}
        email = attempt.email or details.get("email") or session.get("customer_email")
        supporter = get_or_create_supporter(email, attempt.name or details.get("name"))
        note_mailing_consent(supporter, attempt)
        note_language(supporter, attempt)
        amount = session.get("amount_total") or attempt.amount
        currency = (session.get("currency") or attempt.currency).upper()
        if (amount, currency) != (attempt.amount, attempt.currency):
            log.warning("session %s charged %s %s, attempt %s asked %s %s", session["id"], amount, currency,
                        attempt.id, attempt.amount, attempt.currency)
        donation = Donation(
            supporter=supporter,
            campaign_id=attempt.campaign_id,
            attempt_id=attempt.id,
            amount=amount,
            currency=currency,
            covered_fee=attempt.covered_fee if amount == attempt.amount else 0,
            frequency=attempt.frequency,
            status=DonationStatus.PENDING,
            article_url=attempt.article_url,
            variant_id=attempt.variant_id,
            article_id=attempt.article_id,
            stripe_checkout_session_id=session["id"],
        )
        db.session.add(donation)
    if session.get("payment_intent") and not donation.stripe_payment_intent_id:
        donation.stripe_payment_intent_id = session["payment_intent"]
    attempt.status = AttemptStatus.COMPLETED
    db.session.flush()

    if failed:
        donation.transition(DonationStatus.FAILED)
        return f"donation {donation.id} failed"
    if paid and donation.status == DonationStatus.PENDING:
        mark_succeeded(donation, at)
        return f"donation {donation.id} succeeded"
    return f"donation {donation.id} {donation.status.value}"


def mark_succeeded(donation: Donation, at: datetime) -> None:
    """Move a donation to succeeded and queue its receipt email, in this transaction; its receipt number is
    taken as the transaction commits.

    Receipt numbers are gap-free per year, so the year's counter row stays locked from the moment a number is
    taken until the commit, and every gift of the year waits for it (on a renewal day, thousands). So the number
    comes last: the receipt is rendered now, around a placeholder, and number_receipts takes the number, writes
    it into the donation and replaces the placeholder in the email, after everything else is written and just
    before the COMMIT. Taken and committed together, or rolled back together: no gaps, no duplicates."""
    # A gift that reaches us after its day's period was closed goes into the first open day, with a note.
    # Read before the donation changes, so that this query's autoflush does not write it half-changed.
    booked_on, booking_note = booking_day(at.astimezone(timezone.utc).date())
    donation.transition(DonationStatus.SUCCEEDED)
    donation.paid_at = at
    donation.booked_on, donation.booking_note = booked_on, booking_note
    db.session.flush()
    note_first_gift(donation.supporter_id, at)
    # Random, so that nothing else in the email (a supporter's name) can hold it; letters, digits and dashes,
    # which HTML escaping leaves as they are.
    placeholder = f"receipt-number-{secrets.token_hex(8)}"
    key = emails.queue_receipt(donation, receipt_number=placeholder)
    db.session.info.setdefault(UNNUMBERED, {})[donation.id] = (donation, at.year, placeholder, key)


def note_first_gift(supporter_id: int, paid_at: datetime) -> None:
    """Remember when the supporter's first gift was paid (a gift paid earlier than the one known moves it back).

    One conditional UPDATE, so two first gifts booked at once keep the earlier time; a renewal matches no row,
    so it neither writes nor locks the supporter."""
    db.session.execute(
        update(Supporter).where(Supporter.id == supporter_id,
                                or_(Supporter.first_gift_at.is_(None), Supporter.first_gift_at > paid_at))
        .values(first_gift_at=paid_at).execution_options(synchronize_session=False))
    # Only a supporter already in this session is refreshed; loading one here would cost every renewal a query.
    supporter = db.session.identity_map.get(identity_key(Supporter, supporter_id))
    if supporter is not None:
        db.session.expire(supporter, ["first_gift_at"])


#: Every supporter's first gift from the donations themselves, for data written without mark_succeeded (the
#: demo, the bench seed). Paid = succeeded, refunded in part or in full, or disputed: the money arrived.
FIRST_GIFTS_SQL = (
    "UPDATE supporters SET first_gift_at = f.first FROM (SELECT supporter_id, min(paid_at) AS first FROM donations "
    "WHERE status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed') AND paid_at IS NOT NULL "
    "GROUP BY supporter_id) AS f WHERE supporters.id = f.supporter_id "
    "AND (supporters.first_gift_at IS NULL OR supporters.first_gift_at <> f.first)")


def refresh_first_gifts() -> None:
    """Set every supporter's first gift from their donations (see FIRST_GIFTS_SQL)."""
    db.session.flush()
    db.session.execute(text(FIRST_GIFTS_SQL))
    db.session.expire_all()


def _donation_for_payment(intent: str | None) -> Donation | None:
    """The donation a Stripe payment belongs to, locked while an event changes it; None when not ours."""
    if not intent:
        return None
    return db.session.scalars(
        select(Donation).where(Donation.stripe_payment_intent_id == intent).with_for_update()
    ).one_or_none()


def record_charge_refunded(charge: dict[str, Any], at: datetime) -> str:
    """A refund went through at Stripe: the donation shows what has been refunded so far.

    Stripe's charge carries the running total, so repeated or reordered events never count a refund twice.
    """
    donation = _donation_for_payment(charge.get("payment_intent"))
    if donation is None:
        return "ignored: not ours (unknown payment)"
    refunded = min(int(charge.get("amount_refunded") or 0), donation.amount)
    if refunded <= donation.amount_refunded:
        return f"donation {donation.id}: refund already booked"
    donation.transition(DonationStatus.REFUNDED if refunded >= donation.amount else DonationStatus.PARTIALLY_REFUNDED)
    now_refunded = refunded - donation.amount_refunded
    db.session.add(Refund(donation_id=donation.id, amount=now_refunded, currency=donation.currency, refunded_at=at))
    donation.amount_refunded = refunded
    donation.refunded_at = at
    emails.queue_refund(donation, now_refunded)
    return f"donation {donation.id} {donation.status.value} ({refunded} refunded)"


def record_dispute(dispute: dict[str, Any], at: datetime) -> str:
    """A chargeback opened or closed: the donation is disputed while it is open, and paid again if won.

    Stripe's dispute object carries its own status, so events in any order end in the same state.
    """
    donation = _donation_for_payment(dispute.get("payment_intent"))
    if donation is None:
        return "ignored: not ours (unknown payment)"
    row = db.session.scalars(select(Dispute).where(Dispute.stripe_dispute_id == dispute["id"])).one_or_none()
    if row is None:
        row = Dispute(donation_id=donation.id, stripe_dispute_id=dispute["id"], amount=dispute["amount"],
                      currency=dispute["currency"].upper(), reason=dispute.get("reason"), status=dispute["status"],
                      opened_at=_timestamp(dispute.get("created")) or at)
        db.session.add(row)
    if row.closed_at is None:  # a closed dispute is final: an older "open" snapshot does not reopen it
        row.status = dispute["status"]
    if row.status in ("won", "lost") and row.closed_at is None:
        row.closed_at = at
    db.session.flush()
    book_dispute_balances(dispute, row)
    if row.status == "won":
        if donation.status is DonationStatus.DISPUTED:
            donation.transition(DonationStatus.PARTIALLY_REFUNDED if donation.amount_refunded
                                else DonationStatus.SUCCEEDED)
    elif donation.status in (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED):
        donation.transition(DonationStatus.DISPUTED)  # open, or lost: the money went back to the bank
    return f"donation {donation.id} {donation.status.value} (dispute {row.status})"


# -- recurring gifts ---------------------------------------------------------------------------------

def _timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


def _recurring_for(subscription_id: str | None, metadata: dict | None, customer: str | None = None
                   ) -> RecurringDonation | None:
    """The recurring gift for a Stripe subscription, created from our attempt the first time any
    event about it arrives (Stripe does not promise which comes first). None when it is not ours."""
    if not subscription_id:
        return None
    attempt_id = (metadata or {}).get("attempt_id")
    # Locking the attempt serialises every event about this gift, so two first events cannot both create it.
    attempt = db.session.get(CheckoutAttempt, attempt_id, with_for_update=True) if attempt_id else None
    recurring = db.session.scalars(
        select(RecurringDonation).where(RecurringDonation.stripe_subscription_id == subscription_id)
        .with_for_update()
    ).one_or_none()
    if recurring is not None or attempt is None:
        return recurring
    supporter = get_or_create_supporter(attempt.email, attempt.name)
    note_mailing_consent(supporter, attempt)
    note_language(supporter, attempt)
    if customer and not supporter.stripe_customer_id and not privacy.is_erased(supporter):
        supporter.stripe_customer_id = customer
    recurring = RecurringDonation(
        supporter=supporter,
        campaign_id=attempt.campaign_id,
        attempt_id=attempt.id,
        amount=attempt.amount,
        currency=attempt.currency,
        frequency=attempt.frequency,
        status=RecurringStatus.INCOMPLETE,
        article_url=attempt.article_url,
        variant_id=attempt.variant_id,
        article_id=attempt.article_id,
        stripe_subscription_id=subscription_id,
        stripe_customer_id=customer,
    )
    db.session.add(recurring)
    attempt.status = AttemptStatus.COMPLETED
    db.session.flush()
    _note(recurring, recurring.created_at, "started", None, f"{recurring.money} {recurring.frequency.value}")
    return recurring


def _note(recurring: RecurringDonation, at: datetime, what: str, old: object, new: object) -> None:
    """Keep one change of a recurring gift for the staff's timeline."""
    def text(value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date().isoformat()
        return str(getattr(value, "value", value))[:64]

    db.session.add(RecurringChange(recurring_donation_id=recurring.id, at=at, what=what, old=text(old), new=text(new)))


def _set_status(recurring: RecurringDonation, new: RecurringStatus, at: datetime | None) -> None:
    """Apply a status that Stripe reported at ``at``, unless a newer one is already applied.

    Canceled is final, so whatever order events arrive in, the end state is the in-order one.
    """
    if recurring.status is RecurringStatus.CANCELED:
        return
    if new is RecurringStatus.INCOMPLETE and recurring.status is not RecurringStatus.INCOMPLETE:
        return  # Stripe's snapshot from before the first payment: a gift never goes back to incomplete
    if at is not None and recurring.status_at is not None and at < recurring.status_at:
        return
    old = recurring.status
    if recurring.transition(new):
        _note(recurring, at or now_utc(), "status", old.value, new.value)
    recurring.status_at = at or recurring.status_at
    if new is RecurringStatus.CANCELED:
        recurring.canceled_at = recurring.canceled_at or at or now_utc()


def _extend_period(recurring: RecurringDonation, period_end: datetime | None) -> None:
    if period_end and (recurring.current_period_end is None or period_end > recurring.current_period_end):
        recurring.current_period_end = period_end


def record_subscription_checkout(session: dict[str, Any], *, paid: bool, at: datetime) -> str:
    """A Checkout Session in subscription mode completed: the recurring gift exists from now on.
    Its payments are booked from ``invoice.paid``, one donation per invoice."""
    recurring = _recurring_for(session.get("subscription"), session.get("metadata"), session.get("customer"))
    if recurring is None:
        return "ignored: not ours (unknown attempt)"
    if paid and recurring.status is RecurringStatus.INCOMPLETE:
        _set_status(recurring, RecurringStatus.ACTIVE, at)
    return f"recurring donation {recurring.id} {recurring.status.value}"


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[str | None, dict]:
    """Where API version 2025-03-31 and later put an invoice's subscription and its metadata."""
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    return details.get("subscription"), details.get("metadata") or {}


def _invoice_payment_intent(invoice: dict[str, Any]) -> str | None:
    for payment in ((invoice.get("payments") or {}).get("data") or []):
        inner = payment.get("payment") or {}
        if inner.get("type") == "payment_intent" and payment.get("status") == "paid":
            intent = inner.get("payment_intent")
            return intent if isinstance(intent, str) else (intent or {}).get("id")
    return None


def _covered_fee(recurring: RecurringDonation, amount_paid: int) -> int:
    """The fee the supporter chose to cover, while they still pay the amount they chose it with."""
    attempt = db.session.get(CheckoutAttempt, recurring.attempt_id) if recurring.attempt_id else None
    return attempt.covered_fee if attempt is not None and attempt.amount == amount_paid else 0


def _invoice_frequency(invoice: dict[str, Any]) -> Frequency | None:
    """What the invoice paid for, read from its period: a renewal delivered after the supporter
    switched from monthly to yearly is still the monthly payment it was."""
    for line in (invoice.get("lines") or {}).get("data") or []:
        period = line.get("period") or {}
        if period.get("start") and period.get("end") and period["end"] > period["start"]:
            return Frequency.YEARLY if period["end"] - period["start"] > 32 * 86400 else Frequency.MONTHLY
    return None


def _invoice_period_end(invoice: dict[str, Any]) -> datetime | None:
    ends = [line["period"]["end"] for line in ((invoice.get("lines") or {}).get("data") or []) if line.get("period")]
    return _timestamp(max(ends)) if ends else None


def _invoice_recurring(invoice: dict[str, Any]) -> RecurringDonation | None:
    subscription_id, metadata = _invoice_subscription(invoice)
    return _recurring_for(subscription_id, metadata, invoice.get("customer"))


def record_invoice_paid(invoice: dict[str, Any], at: datetime) -> str:
    """One donation per paid invoice of a recurring gift, each with its own receipt; the gift is active again."""
    recurring = _invoice_recurring(invoice)
    if recurring is None:
        return "ignored: not ours (unknown subscription)"
    _set_status(recurring, RecurringStatus.ACTIVE, at)
    _extend_period(recurring, _invoice_period_end(invoice))
    if not invoice.get("amount_paid"):
        return f"recurring donation {recurring.id}: nothing paid on {invoice['id']}"
    donation = db.session.scalars(select(Donation).where(Donation.stripe_invoice_id == invoice["id"])).one_or_none()
    if donation is not None:
        return f"donation {donation.id} already booked"
    paid_at = _timestamp((invoice.get("status_transitions") or {}).get("paid_at")) or at
    # The first invoice is the payment the reader's checkout made, so it names the attempt (a conversion of
    # the ask); renewals carry the gift's variant and article too, but no attempt: they convert nobody new.
    first = invoice.get("billing_reason") == "subscription_create" and recurring.attempt_id is not None and (
        db.session.scalar(select(Donation.id).where(Donation.attempt_id == recurring.attempt_id)) is None)
    donation = Donation(
        supporter=recurring.supporter,
        campaign_id=recurring.campaign_id,
        attempt_id=recurring.attempt_id if first else None,
        variant_id=recurring.variant_id,
        article_id=recurring.article_id,
        recurring_donation=recurring,
        amount=invoice["amount_paid"],
        currency=invoice["currency"].upper(),
        covered_fee=_covered_fee(recurring, invoice["amount_paid"]),
        frequency=_invoice_frequency(invoice) or recurring.frequency,
        status=DonationStatus.PENDING,
        article_url=recurring.article_url,
        stripe_invoice_id=invoice["id"],
        stripe_subscription_id=recurring.stripe_subscription_id,
        stripe_payment_intent_id=_invoice_payment_intent(invoice),
    )
    db.session.add(donation)
    db.session.flush()
    mark_succeeded(donation, paid_at)
    return f"donation {donation.id} succeeded ({invoice.get('billing_reason')})"


def record_invoice_failed(invoice: dict[str, Any], at: datetime) -> str:
    """A renewal was declined: the gift is past due and the supporter gets one email per invoice and attempt."""
    recurring = _invoice_recurring(invoice)
    if recurring is None:
        return "ignored: not ours (unknown subscription)"
    _set_status(recurring, RecurringStatus.PAST_DUE, at)
    if recurring.status is RecurringStatus.PAST_DUE:
        emails.queue_payment_failed(recurring, invoice["id"], int(invoice.get("attempt_count") or 1))
    return f"recurring donation {recurring.id} {recurring.status.value}"


def _subscription_status(subscription: dict[str, Any]) -> RecurringStatus:
    status = subscription.get("status")
    if status in ("canceled", "incomplete_expired"):
        return RecurringStatus.CANCELED
    if subscription.get("pause_collection"):
        return RecurringStatus.PAUSED
    return {
        "active": RecurringStatus.ACTIVE,
        "trialing": RecurringStatus.ACTIVE,
        "past_due": RecurringStatus.PAST_DUE,
        "unpaid": RecurringStatus.PAST_DUE,
        "paused": RecurringStatus.PAUSED,
    }.get(status, RecurringStatus.INCOMPLETE)


def apply_subscription(subscription: dict[str, Any], at: datetime | None) -> str:
    """Bring a recurring gift in line with Stripe's subscription object as it was at ``at``:
    status, amount, interval, cancellation at period end, pause, period end.

    ``at`` is None for Stripe's answer to our own API call: it is applied at once, but it leaves the
    ordering guards to Stripe's event times (our clock is not Stripe's), and the event that follows
    confirms it."""
    recurring = _recurring_for(subscription.get("id"), subscription.get("metadata"), subscription.get("customer"))
    if recurring is None:
        return "ignored: not ours (unknown subscription)"
    _set_status(recurring, _subscription_status(subscription), at)
    items = (subscription.get("items") or {}).get("data") or []
    if items:
        _extend_period(recurring, _timestamp(items[0].get("current_period_end")))
    if items and (at is None or recurring.terms_at is None or at >= recurring.terms_at):
        price = items[0]["price"]
        terms = {
            "amount": price["unit_amount"] * (items[0].get("quantity") or 1),
            "currency": price["currency"].upper(),
            "frequency": Frequency.from_interval(price["recurring"]["interval"]),
            "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
            "paused_until": _timestamp((subscription.get("pause_collection") or {}).get("resumes_at")),
        }
        for field, value in terms.items():
            if getattr(recurring, field) != value:
                _note(recurring, at or now_utc(), field, getattr(recurring, field), value)
                setattr(recurring, field, value)
        recurring.terms_at = at or recurring.terms_at
    if subscription.get("status") == "canceled":
        recurring.canceled_at = _timestamp(subscription.get("canceled_at")) or recurring.canceled_at or at or now_utc()
    return f"recurring donation {recurring.id} {recurring.status.value}"
