"""The sandbox: a local stand-in for Stripe Checkout, for the offline demo and the browser tests.

It keeps Stripe-shaped objects in its own table and, like Stripe, tells the app what happened
only through signed events posted to /stripe/webhook, so the demo runs the real intake path.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass

import stripe
from flask import current_app
from sqlalchemy import select
from werkzeug.test import Client

from ..db import insert_ignore
from ..extensions import db
from .gateway import CheckoutRequest, CheckoutSession
from .models import SandboxObject

log = logging.getLogger(__name__)

API_VERSION: str = stripe.api_version  # the version the pinned SDK speaks

#: Stripe's test cards that the sandbox understands (https://docs.stripe.com/testing#cards).
SUCCEEDING_CARDS = {"4242424242424242", "5555555555554444", "4000056655665556"}
DECLINED_CARDS = {"4000000000000002": "Your card was declined.", "4000000000009995": "Your card has insufficient funds."}


class SandboxError(ValueError):
    """A card or session the sandbox checkout cannot accept; the message is shown to the reader."""


@dataclass(frozen=True)
class PaymentResult:
    paid: bool
    message: str
    redirect_url: str | None = None


def _new_id(prefix: str) -> str:
    return f"{prefix}_sandbox_{secrets.token_hex(12)}"


class SandboxGateway:
    name = "sandbox"

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        key = request.idempotency_key
        session_id = _new_id("cs_test")
        url = f"{current_app.config['PUBLIC_URL']}/sandbox/checkout/{session_id}"
        data = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "submit_type": "donate",
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": request.amount,
            "amount_total": request.amount,
            "currency": request.currency.lower(),
            "customer": None,
            "customer_email": request.email,
            "customer_details": None,
            "client_reference_id": request.attempt_id,
            "metadata": dict(request.metadata),
            "payment_intent": None,
            "invoice": None,
            "subscription": None,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "url": url,
            "livemode": False,
            "created": int(time.time()),
            "expires_at": int(time.time()) + 24 * 3600,
            "description": request.description,
        }
        # The same idempotency key returns the object made the first time, as Stripe does.
        insert_ignore(db.session, SandboxObject, {"id": session_id, "idempotency_key": key, "data": data},
                      ["idempotency_key"])
        stored = db.session.scalars(select(SandboxObject).where(SandboxObject.idempotency_key == key)).one()
        return CheckoutSession(id=stored.id, url=stored.data["url"])


def get_session(session_id: str) -> dict | None:
    row = db.session.get(SandboxObject, session_id)
    return row.data if row is not None and row.data.get("object") == "checkout.session" else None


def pay(session_id: str, card_number: str) -> PaymentResult:
    """Pay an open sandbox session with a test card, then deliver Stripe's events for it.

    Unlike an operation, this commits: it plays Stripe's servers, whose state is settled
    before they send a webhook.
    """
    row = db.session.get(SandboxObject, session_id, with_for_update=True)
    if row is None or row.data.get("object") != "checkout.session":
        raise SandboxError("This checkout session does not exist.")
    session = dict(row.data)
    if session["status"] != "open":
        raise SandboxError("This checkout session is no longer open.")
    card = "".join(ch for ch in card_number if ch.isdigit())
    if card not in SUCCEEDING_CARDS and card not in DECLINED_CARDS:
        raise SandboxError("Use a Stripe test card, such as 4242 4242 4242 4242.")

    now = int(time.time())
    intent_id = session["payment_intent"] or _new_id("pi")
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": session["amount_total"],
        "currency": session["currency"],
        "metadata": session["metadata"],
        "status": "requires_payment_method",
        "livemode": False,
        "created": now,
    }
    session["payment_intent"] = intent_id
    if card in DECLINED_CARDS:
        message = DECLINED_CARDS[card]
        intent["last_payment_error"] = {"type": "card_error", "code": "card_declined", "message": message}
        events = [_event("payment_intent.payment_failed", intent)]
        result = PaymentResult(paid=False, message=message)
    else:
        intent.update(status="succeeded", amount_received=session["amount_total"], latest_charge=_new_id("ch"))
        session.update(
            status="complete",
            payment_status="paid",
            url=None,
            customer_details={"email": session["customer_email"], "name": None},
        )
        events = [_event("payment_intent.succeeded", intent), _event("checkout.session.completed", session)]
        redirect = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
        result = PaymentResult(paid=True, message="Payment succeeded.", redirect_url=redirect)
    row.data = session
    db.session.merge(SandboxObject(id=intent_id, data=intent))
    for event in events:
        db.session.add(SandboxObject(id=event["id"], data=event))
    db.session.commit()
    for event in events:
        deliver(event)
    return result


def _event(event_type: str, obj: dict) -> dict:
    return {
        "id": _new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def deliver(event: dict) -> int:
    """POST one signed event to this app's /stripe/webhook, as Stripe would, and return the status code.

    Delivered in process through the WSGI app (no network, no second server needed), so the
    signature check, the event store and the ledger all run exactly as for Stripe's own deliveries.
    """
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, current_app.config["STRIPE_WEBHOOK_SECRET"])
    client = Client(current_app.wsgi_app)
    response = client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        base_url=current_app.config["PUBLIC_URL"],
    )
    if response.status_code >= 300:
        log.error("sandbox: /stripe/webhook answered %s to %s", response.status_code, event["id"])
    return response.status_code
