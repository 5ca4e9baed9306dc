"""Stripe webhook intake: verify, store each event once, dispatch to the ledger.

https://docs.stripe.com/webhooks
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import stripe
from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError

from ..checkout import operations as checkout_ops
from ..db import database_unavailable, discard_transaction, now_utc, short_reason
from ..extensions import csrf, db
from ..ledger import operations as ledger
from ..ledger import payouts
from ..ledger.models import IllegalTransition, StripeEvent
from ..security.privacy import guard_event

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

#: Seconds a signature's timestamp may differ from our clock, into the past or the future.
TOLERANCE = 300

class InvalidWebhook(ValueError):
    pass


def verify_event(payload: bytes, header: str | None, secret: str, now: float | None = None) -> dict[str, Any]:
    """Check Stripe-Signature over the raw body and return the event as a plain dict.

    The SDK checks the signature and rejects old timestamps; a timestamp too far in the
    future is rejected here too, so a captured header cannot be replayed later.
    """
    try:
        payload.decode("utf-8")  # the SDK decodes the body itself and would raise UnicodeDecodeError (a 500)
    except UnicodeDecodeError:
        raise InvalidWebhook("Body is not UTF-8") from None
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(str(exc).splitlines()[0]) from None
    timestamp = _signature_timestamp(header or "")
    if timestamp > (now or time.time()) + TOLERANCE:
        raise InvalidWebhook("Timestamp is in the future beyond the tolerance")
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise InvalidWebhook("Body is not JSON") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidWebhook("Body is not a Stripe event")
    return event


def _signature_timestamp(header: str) -> int:
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "t":
            return int(value)
    raise InvalidWebhook("No timestamp")


@bp.post("/stripe/webhook")
@csrf.exempt
def stripe_webhook():
    try:
        event = verify_event(
            request.get_data(cache=False), request.headers.get("Stripe-Signature"),
            current_app.config["STRIPE_WEBHOOK_SECRET"],
        )
    except InvalidWebhook as exc:
        log.warning("webhook rejected: %s", exc)
        return jsonify(error=f"Invalid webhook: {exc}"), 400
    try:
        outcome = receive_event(event)
        db.session.commit()
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        # The database is down, restarting or cut our connection: nothing of this event is stored, so the
        # answer must not be 2xx. Stripe redelivers a 5xx, and pool_pre_ping reconnects for the next request.
        discard_transaction(db.session)
        log.warning("webhook %s (%s) not stored, the database is unavailable: %s",
                    event["id"], event["type"], short_reason(exc))
        return jsonify(error="The database is unavailable; the event was not stored. Stripe will retry."), 503
    return jsonify(received=True, outcome=outcome), 200


def receive_event(event: dict[str, Any]) -> str:
    """Store the event once and process it in the same transaction; returns what was done.

    A second delivery, even a concurrent one, finds the stored row (PostgreSQL makes it wait
    on the unique key until the first commits) and does nothing.
    """
    stored = db.session.get(StripeEvent, event["id"])
    if stored is not None and stored.processed_at is not None:
        return "duplicate"
    event = guard_event(event)  # about an erased supporter: neither stored nor booked with personal data
    if stored is None:
        stored = StripeEvent(
            id=event["id"],
            type=event["type"],
            api_version=event.get("api_version"),
            livemode=bool(event.get("livemode")),
            created=datetime.fromtimestamp(event["created"], timezone.utc),
            payload=event,
        )
        try:
            with db.session.begin_nested():
                db.session.add(stored)
        except IntegrityError:
            return "duplicate"
    try:
        with db.session.begin_nested():  # an illegal transition undoes all of this event's changes
            outcome = dispatch(event)
    except IllegalTransition as exc:
        # Stripe's retries would not make it legal; keep the event and say why it changed nothing.
        log.error("webhook %s (%s): %s", event["id"], event["type"], exc)
        outcome = f"ignored: {exc}"
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A signed event whose object lacks what its type promises: retries would bring the same body,
        # so it is kept, with why, for a person to look at, and answered without a 5xx.
        log.error("webhook %s (%s): malformed object: %r", event["id"], event["type"], exc)
        outcome = f"ignored: malformed {event['type']} object ({type(exc).__name__}: {str(exc)[:100]})"
    stored.processed_at = now_utc()
    stored.outcome = outcome
    log.info("webhook %s %s: %s", event["id"], event["type"], outcome)
    return outcome


#: Every event type ``dispatch`` acts on: the events to subscribe the webhook endpoint to, and the ones the
#: sync job asks Stripe for (Stripe's ``types`` filter takes at most 20).
HANDLED_TYPES = (
    "checkout.session.completed", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "checkout.session.expired",
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed", "charge.updated",
    "payout.paid", "payout.failed", "payout.canceled", "payout.updated", "charge.refunded",
    "invoice.paid", "invoice.payment_failed",
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
    "payment_intent.payment_failed",
)


def dispatch(event: dict[str, Any]) -> str:
    obj = event["data"]["object"]
    occurred = datetime.fromtimestamp(event["created"], timezone.utc)
    match event["type"]:
        case "checkout.session.completed":
            # https://docs.stripe.com/api/events/types#event_types-checkout.session.completed
            return ledger.record_checkout_session(obj, paid=obj.get("payment_status") == "paid", at=occurred)
        case "checkout.session.async_payment_succeeded":
            # https://docs.stripe.com/api/events/types#event_types-checkout.session.async_payment_succeeded
            return ledger.record_checkout_session(obj, paid=True, at=occurred)
        case "checkout.session.async_payment_failed":
            # https://docs.stripe.com/api/events/types#event_types-checkout.session.async_payment_failed
            return ledger.record_checkout_session(obj, paid=False, failed=True, at=occurred)
        case "checkout.session.expired":
            # https://docs.stripe.com/api/events/types#event_types-checkout.session.expired
            return checkout_ops.expire_attempt(obj)
        case "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed":
            # https://docs.stripe.com/api/events/types#event_types-charge.dispute.closed
            return ledger.record_dispute(obj, occurred)
        case "charge.updated":
            # https://docs.stripe.com/api/events/types#event_types-charge.updated
            return payouts.record_charge_updated(obj, occurred)
        case "payout.paid" | "payout.failed" | "payout.canceled" | "payout.updated":
            # https://docs.stripe.com/api/events/types#event_types-payout.paid
            return payouts.record_payout(obj, occurred)
        case "charge.refunded":
            # https://docs.stripe.com/api/events/types#event_types-charge.refunded
            return ledger.record_charge_refunded(obj, occurred)
        case "invoice.paid":
            # https://docs.stripe.com/api/events/types#event_types-invoice.paid
            return ledger.record_invoice_paid(obj, occurred)
        case "invoice.payment_failed":
            # https://docs.stripe.com/api/events/types#event_types-invoice.payment_failed
            return ledger.record_invoice_failed(obj, occurred)
        case "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted":
            # https://docs.stripe.com/api/events/types#event_types-customer.subscription.updated
            return ledger.apply_subscription(obj, occurred)
        case "payment_intent.payment_failed":
            # https://docs.stripe.com/api/events/types#event_types-payment_intent.payment_failed
            return checkout_ops.record_decline(obj)
        case _:
            return "ignored: event type not handled"
