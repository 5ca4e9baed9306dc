"""The GDPR's rights for supporters: access (everything we hold about them, as JSON and as CSV files),
erasure (pseudonymisation, with the money facts kept for the legal retention period), consent records,
and the retention of hashed client addresses.

Erasure keeps amounts, dates, receipt numbers and the ledger: the law makes us keep the books for years.
What identified the person (email, name, Stripe customer, addresses, what emails said) is replaced or
cleared, and only keyed hashes of the email and customer id are kept (``erasures``), so that a later
webhook about the same customer is recognised and cannot bring the data back (:func:`guard_event`).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import logging
import re
import zipfile
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import String, cast, func, or_, select, update

from ..checkout.models import CheckoutAttempt
from ..db import now_utc
from ..extensions import db
from ..i18n import N_
from ..ledger.models import (
    ConsentRecord,
    Donation,
    Erasure,
    RecurringChange,
    RecurringDonation,
    Refund,
    StripeEvent,
    Supporter,
)
from ..mail.models import EmailStatus, OutboxEmail
from ..money import Money
from ..payments.gateway import GatewayError, get_gateway
from ..reports.models import AnnualStatement
from ..reports.registry import csv_cell
from ..staff.models import AuditEntry, StaffSession, StaffUser, audit_redaction
from .ip import hash_ip

log = logging.getLogger(__name__)

#: RFC 2606 reserves ``.invalid``: an erased supporter's address can never reach anyone.
ERASED_DOMAIN = "invalid"
ERASED = "[erased]"

#: Keys whose values are personal wherever they appear in a Stripe object.
_PERSONAL_KEYS = frozenset({"email", "customer_email", "receipt_email", "customer_name", "customer_phone",
                            "customer_address", "customer_shipping", "customer_tax_ids"})
#: Objects (by the key they hang under) that describe a person: their name, phone and address go too.
_PERSON_HOLDERS = frozenset({"customer_details", "billing_details", "shipping", "shipping_details",
                             "collected_information"})
_PERSON_FIELDS = ("name", "email", "phone", "address", "shipping", "description", "individual_name",
                  "business_name")


class ErasureRefused(RuntimeError):
    """The payment provider would not cancel the gifts or delete the customer: nothing was pseudonymised."""


# -- small helpers -----------------------------------------------------------------------------------

def erased_address(supporter_id: int) -> str:
    return f"erased-{supporter_id}@{ERASED_DOMAIN}"


def is_erased_address(address: str | None) -> bool:
    """Whether mail to ``address`` can never be delivered: the reserved ``.invalid`` domain (RFC 2606)."""
    return bool(address) and address.strip().lower().rstrip(".").endswith((f"@{ERASED_DOMAIN}", f".{ERASED_DOMAIN}"))


def is_erased(supporter: Supporter) -> bool:
    return is_erased_address(supporter.email)


def email_hash(email: str) -> str:
    """Keyed hash (the IP hash's HMAC, with a purpose prefix) of a normalised email address."""
    return hash_ip(f"email:{email.strip().lower()}")


def customer_hash(customer_id: str) -> str:
    return hash_ip(f"stripe-customer:{customer_id}")


def _contains(column, needle: str):
    """A case-insensitive substring test on any column (JSON as its text), literal % and _ included."""
    return func.lower(cast(column, String)).contains(needle.lower(), autoescape=True)


def _replace_all(value: Any, needles: list[str]) -> Any:
    """``value`` with each needle (case-insensitive, as a whole word: "Ann" leaves "Annual" alone) in any
    string replaced by [erased]."""
    if isinstance(value, str):
        for needle in needles:
            value = re.sub(rf"(?<!\w){re.escape(needle)}(?!\w)", ERASED, value, flags=re.IGNORECASE)
        return value
    if isinstance(value, dict):
        return {key: _replace_all(item, needles) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_all(item, needles) for item in value]
    return value


def scrub_personal(obj: Any, *, holder: bool = False) -> Any:
    """A copy of a Stripe-shaped object without a person's email, name, phone or address; amounts, ids,
    statuses and dates stay. A ``customer`` object loses its personal fields too."""
    if isinstance(obj, list):
        return [scrub_personal(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    person = holder or obj.get("object") == "customer"
    clean: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _PERSONAL_KEYS or (person and key in _PERSON_FIELDS):
            clean[key] = None
        elif key in _PERSON_HOLDERS and isinstance(value, dict):
            clean[key] = scrub_personal(value, holder=True)
        else:
            clean[key] = scrub_personal(value)
    return clean


# -- access ------------------------------------------------------------------------------------------

def _money(amount: int, currency: str) -> dict:
    return {"amount_minor": amount, "currency": currency, "formatted": Money(amount, currency).format()}


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def collect(supporter: Supporter) -> dict[str, list[dict[str, Any]]]:
    """Everything held about the supporter, section by section, each a list of flat records (GDPR art. 15)."""
    donations = list(db.session.scalars(select(Donation).where(Donation.supporter_id == supporter.id)
                                        .order_by(Donation.id)))
    recurring = list(db.session.scalars(select(RecurringDonation).where(RecurringDonation.supporter_id == supporter.id)
                                        .order_by(RecurringDonation.id)))
    changes = list(db.session.scalars(select(RecurringChange).where(
        RecurringChange.recurring_donation_id.in_([r.id for r in recurring])).order_by(RecurringChange.at,
                                                                                      RecurringChange.id))) \
        if recurring else []
    refunds = list(db.session.scalars(select(Refund).where(Refund.donation_id.in_([d.id for d in donations]))
                                      .order_by(Refund.id))) if donations else []
    statements = list(db.session.scalars(select(AnnualStatement).where(AnnualStatement.supporter_id == supporter.id)
                                         .order_by(AnnualStatement.fiscal_year)))
    emails = list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_address == supporter.email)
                                     .order_by(OutboxEmail.id)))
    consents = list(db.session.scalars(select(ConsentRecord).where(ConsentRecord.supporter_id == supporter.id)
                                       .order_by(ConsentRecord.at, ConsentRecord.id)))
    attempt_ids = {d.attempt_id for d in donations} | {r.attempt_id for r in recurring}
    attempts = list(db.session.scalars(select(CheckoutAttempt).where(or_(
        func.lower(CheckoutAttempt.email) == supporter.email.lower(),
        CheckoutAttempt.id.in_([a for a in attempt_ids if a]))).order_by(CheckoutAttempt.created_at)))
    return {
        "supporter": [{
            "id": supporter.id, "email": supporter.email, "name": supporter.name,
            "stripe_customer_id": supporter.stripe_customer_id, "created_at": _iso(supporter.created_at),
            "mailing_consent_at": _iso(supporter.mailing_consent_at),
            "mailing_consent_source": supporter.mailing_consent_source,
        }],
        "gifts": [{
            "id": d.id, **_money(d.amount, d.currency), "covered_fee_minor": d.covered_fee,
            "frequency": d.frequency.value, "status": d.status.value, "paid_at": _iso(d.paid_at),
            "receipt_number": d.receipt_number, "amount_refunded_minor": d.amount_refunded,
            "recurring_gift_id": d.recurring_donation_id, "article_url": d.article_url,
            "created_at": _iso(d.created_at),
        } for d in donations],
        "recurring_gifts": [{
            "id": r.id, **_money(r.amount, r.currency), "frequency": r.frequency.value, "status": r.status.value,
            "started_at": _iso(r.created_at), "current_period_end": _iso(r.current_period_end),
            "cancel_at_period_end": r.cancel_at_period_end, "paused_until": _iso(r.paused_until),
            "canceled_at": _iso(r.canceled_at), "stripe_subscription_id": r.stripe_subscription_id,
        } for r in recurring],
        "recurring_gift_changes": [{
            "recurring_gift_id": c.recurring_donation_id, "at": _iso(c.at), "what": c.what, "old": c.old,
            "new": c.new,
        } for c in changes],
        "refunds": [{
            "id": f.id, "gift_id": f.donation_id, **_money(f.amount, f.currency), "refunded_at": _iso(f.refunded_at),
        } for f in refunds],
        "receipts": [{
            "kind": "receipt", "number": d.receipt_number, "gift_id": d.id, **_money(d.amount, d.currency),
            "issued_at": _iso(d.paid_at),
        } for d in donations if d.receipt_number] + [{
            "kind": "annual statement", "number": s.number, "fiscal_year": s.fiscal_year,
            "issued_at": _iso(s.issued_at), "copies_sent": s.reissued_count,
        } for s in statements],
        "emails": [{
            "kind": e.template, "to": e.to_address, "subject": e.subject, "status": e.status.value,
            "queued_at": _iso(e.created_at), "sent_at": _iso(e.sent_at),
        } for e in emails],
        "consents": [{
            "action": c.action, "wording": c.wording, "source": c.source, "at": _iso(c.at),
        } for c in consents],
        "checkout_attempts": [{
            "id": a.id, "email": a.email, "name": a.name, **_money(a.amount, a.currency),
            "frequency": a.frequency.value, "status": a.status.value, "article_url": a.article_url,
            "locale": a.locale, "mailing_consent_source": a.mailing_consent_source,
            "client_address_hash_kept": a.ip_hash is not None, "created_at": _iso(a.created_at),
        } for a in attempts],
    }


def export_json(supporter: Supporter) -> str:
    return json.dumps({"generated_at": now_utc().isoformat(), "publication": current_app.config["PUBLICATION_NAME"],
                       **collect(supporter)}, indent=2, ensure_ascii=False)


def export_zip(supporter: Supporter) -> bytes:
    """One CSV per section (UTF-8), text defused against spreadsheet formulas, in a ZIP."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for section, rows in collect(supporter).items():
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            header = list(rows[0]) if rows else ["(none)"]
            writer.writerow(header)
            for row in rows:
                writer.writerow([csv_cell(row.get(name)) for name in header])
            archive.writestr(f"{section}.csv", out.getvalue())
    return buffer.getvalue()


def export_filename(supporter: Supporter, extension: str) -> str:
    return f"supporter-{supporter.id}-data.{extension}"


# -- consent -----------------------------------------------------------------------------------------

def record_consent(supporter: Supporter, action: str, wording: str, source: str, at: datetime | None = None) -> None:
    """Keep one consent event (given or withdrawn) as it happened; records are never changed."""
    db.session.add(ConsentRecord(supporter_id=supporter.id, action=action, wording=wording, source=source,
                                 at=at or now_utc()))


def split_consent_source(source: str) -> tuple[str, str]:
    """``donation form: Keep me informed…`` -> (``donation form``, ``Keep me informed…``)."""
    where, sep, words = source.partition(": ")
    return (where, words) if sep else ("donation form", source)


# -- erasure -----------------------------------------------------------------------------------------

def erase(supporter: Supporter, *, requested_by: str, staff_user: StaffUser | None = None,
          reason: str | None = None) -> Erasure:
    """Erase a supporter's personal data (GDPR art. 17); the money facts stay.

    First at the payment provider: open recurring gifts are cancelled and the Stripe customer deleted. If
    the provider refuses, ErasureRefused is raised before anything here is pseudonymised (the caller may
    still commit the cancellations, which are true at Stripe). Then, in this transaction, every copy of the
    email, name and customer id in our tables is replaced or cleared, and only keyed hashes are kept.
    """
    from ..ledger import operations as ledger  # the ledger imports this module's guards

    if is_erased(supporter):
        raise ErasureRefused(N_("This supporter's data has already been erased."))
    gateway = get_gateway()
    recurring = list(db.session.scalars(select(RecurringDonation).where(RecurringDonation.supporter_id == supporter.id)))
    customers = sorted({c for c in [supporter.stripe_customer_id, *(r.stripe_customer_id for r in recurring)] if c})
    try:
        for gift in recurring:
            if gift.is_open:
                ledger.apply_subscription(gateway.cancel_subscription(gift.stripe_subscription_id,
                                                                      at_period_end=False), None)
        for customer in customers:
            gateway.delete_customer(customer)
    except GatewayError as exc:
        raise ErasureRefused(str(exc)) from exc

    old_email, old_name, erased = supporter.email.lower(), supporter.name, erased_address(supporter.id)
    needles = [n.lower() for n in (old_email, old_name) if n and len(n) >= 3]
    row = None
    for customer in customers or [None]:
        row = Erasure(supporter_id=supporter.id, email_hash=email_hash(old_email),
                      customer_hash=customer_hash(customer) if customer else None, requested_by=requested_by,
                      staff_user_id=staff_user.id if staff_user else None,
                      reason=_replace_all(reason, needles))  # a reason that names them keeps no name
        db.session.add(row)
    if supporter.mailing_consent_at is not None:
        record_consent(supporter, "withdrawn", "Personal data erased", "erasure")
    supporter.email, supporter.name, supporter.stripe_customer_id = erased, None, None
    supporter.mailing_consent_at = supporter.mailing_consent_source = None
    for gift in recurring:
        gift.stripe_customer_id = None

    attempt_ids = [a for a in db.session.scalars(select(Donation.attempt_id).where(
        Donation.supporter_id == supporter.id)) if a] + [g.attempt_id for g in recurring if g.attempt_id]
    db.session.execute(update(CheckoutAttempt).where(or_(
        func.lower(CheckoutAttempt.email) == old_email, CheckoutAttempt.id.in_(attempt_ids)))
        .values(email=erased, name=None, ip_hash=None, mailing_consent_source=None)
        .execution_options(synchronize_session="fetch"))

    for statement in db.session.scalars(select(AnnualStatement).where(AnnualStatement.supporter_id == supporter.id)):
        content = copy.deepcopy(statement.content)
        content["supporter"] = {**(content.get("supporter") or {}), "name": "", "email": erased}
        statement.content = _replace_all(content, needles)

    event_match = [_contains(StripeEvent.payload, old_email)] + [_contains(StripeEvent.payload, c) for c in customers]
    for stored in db.session.scalars(select(StripeEvent).where(or_(*event_match))):
        stored.payload = _replace_all(scrub_personal(stored.payload), needles)

    for email in db.session.scalars(select(OutboxEmail).where(or_(
            func.lower(OutboxEmail.to_address) == old_email, _contains(OutboxEmail.body_text, old_email),
            _contains(OutboxEmail.subject, old_email)))):
        if email.to_address.lower() == old_email:
            email.to_address, email.body_text, email.body_html = erased, ERASED, ERASED
            email.subject = _replace_all(email.subject, needles)
            email.last_error = None
            if email.status is EmailStatus.PENDING:
                email.status, email.last_error = EmailStatus.FAILED, "cancelled: the supporter's data was erased"
        else:  # an email to someone else (staff) that named them
            email.subject, email.body_text, email.body_html = (
                _replace_all(email.subject, needles), _replace_all(email.body_text, needles),
                _replace_all(email.body_html, needles))

    redact_audit(or_(
        (AuditEntry.object_type == "supporter") & (AuditEntry.object_id == str(supporter.id)),
        _contains(AuditEntry.detail, old_email), _contains(AuditEntry.note, old_email),
        func.lower(AuditEntry.actor_email) == old_email,
        *([_contains(AuditEntry.detail, old_name)] if old_name and len(old_name) >= 3 else []),
    ), needles, erased)
    db.session.flush()
    log.info("supporter %s erased (requested by %s)", supporter.id, requested_by)
    return row


def redact_audit(where, needles: list[str], erased: str) -> int:
    """Replace the supporter's email and name inside matching audit entries: the one sanctioned change."""
    changed = 0
    with audit_redaction():
        for entry in db.session.scalars(select(AuditEntry).where(where)):
            detail = _replace_all(entry.detail or {}, needles)
            note = _replace_all(entry.note, needles)
            actor_email = erased if entry.actor_id is None and entry.actor_email and \
                entry.actor_email.lower() in needles else entry.actor_email
            if (detail, note, actor_email) != (entry.detail, entry.note, entry.actor_email):
                entry.detail, entry.note, entry.actor_email = detail, note, actor_email
                changed += 1
        db.session.flush()
    return changed


# -- webhooks after an erasure -----------------------------------------------------------------------

def _identifiers(obj: Any, customers: set[str], emails: set[str]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _identifiers(item, customers, emails)
        return
    if not isinstance(obj, dict):
        return
    if obj.get("object") == "customer" and isinstance(obj.get("id"), str):
        customers.add(obj["id"])
    for key, value in obj.items():
        if key == "customer" and isinstance(value, str):
            customers.add(value)
        elif key in ("email", "customer_email", "receipt_email") and isinstance(value, str) and value:
            emails.add(value.strip().lower())
        elif isinstance(value, (dict, list)):
            _identifiers(value, customers, emails)


def is_about_erased(obj: dict[str, Any]) -> bool:
    """Whether a Stripe object names a customer or an email address whose data we erased."""
    customers: set[str] = set()
    emails: set[str] = set()
    _identifiers(obj, customers, emails)
    if not customers and not emails:
        return False
    conditions = []
    if customers:
        conditions.append(Erasure.customer_hash.in_([customer_hash(c) for c in customers]))
    if emails:
        conditions.append(Erasure.email_hash.in_([email_hash(e) for e in emails]))
    return db.session.scalar(select(Erasure.id).where(or_(*conditions)).limit(1)) is not None


def guard_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as it may be stored and processed: without personal data when it is about an erased
    supporter (the money facts in it still book), else unchanged."""
    if not is_about_erased(event["data"]["object"]):
        return event
    log.info("webhook %s (%s) is about an erased supporter: personal data dropped", event["id"], event["type"])
    return scrub_personal(event)


# -- IP retention ------------------------------------------------------------------------------------

def clear_old_ip_hashes(batch: int = 500) -> dict[str, int]:
    """Scheduler job ``privacy.ip_retention``: forget the hashed client addresses older than
    IP_RETENTION_DAYS in checkout attempts, staff sessions and the audit log (the last through the audit
    log's one sanctioned redaction path)."""
    cutoff = now_utc() - timedelta(days=current_app.config["IP_RETENTION_DAYS"])
    attempts = db.session.execute(update(CheckoutAttempt).where(
        CheckoutAttempt.created_at < cutoff, CheckoutAttempt.ip_hash.is_not(None)).values(ip_hash=None)
        .execution_options(synchronize_session=False)).rowcount
    sessions = db.session.execute(update(StaffSession).where(
        StaffSession.created_at < cutoff, StaffSession.ip_hash.is_not(None)).values(ip_hash=None)
        .execution_options(synchronize_session=False)).rowcount
    audit = 0
    with audit_redaction():
        while True:
            entries = list(db.session.scalars(select(AuditEntry).where(
                AuditEntry.at < cutoff, AuditEntry.ip_hash.is_not(None)).order_by(AuditEntry.id).limit(batch)))
            for entry in entries:
                entry.ip_hash = None
            db.session.flush()
            audit += len(entries)
            if len(entries) < batch:
                break
    return {"checkout_attempts": attempts, "staff_sessions": sessions, "audit_entries": audit}

