"""The sandbox: a local stand-in for Stripe Checkout, Billing and the Billing Portal, for the offline
demo and the browser tests.

It keeps Stripe-shaped objects in its own table and, like Stripe, tells the app what happened only
through signed events posted to /stripe/webhook, so the demo runs the real intake path. It has its
own clock, which `flask sandbox advance --days N` moves forward to play renewals, as Stripe's test
clocks do.

Unlike operations, the functions here commit: they play Stripe's servers, whose state is settled
before they send a webhook. Callers therefore call the gateway before they write anything.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import stripe
from flask import current_app
from sqlalchemy import select
from werkzeug.test import Client

from ..dates import add_months
from ..db import insert_ignore
from ..extensions import db
from ..i18n import N_
from .gateway import CheckoutRequest, CheckoutSession, GatewayError
from .models import SandboxObject

log = logging.getLogger(__name__)

API_VERSION: str = stripe.api_version  # the version the pinned SDK speaks

#: Stripe's test cards that the sandbox understands (https://docs.stripe.com/testing#cards).
SUCCEEDING_CARDS = {"4242424242424242", "5555555555554444", "4000056655665556"}
#: Messages in English, as Stripe stores them; marked (N_) so that the checkout page shows them in the reader's
#: language.
DECLINED_CARDS = {"4000000000000002": N_("Your card was declined."),
                  "4000000000009995": N_("Your card has insufficient funds.")}
#: Stripe's "attaches, but charges fail" card. The sandbox lets its first payment through so that
#: a demo can show what happens when a later renewal is declined.
DECLINES_RENEWALS = "4000000000000341"
CLOCK_ID = "sandbox_clock"


class SandboxError(ValueError):
    """A card or session the sandbox checkout cannot accept; the message is shown to the reader."""


@dataclass(frozen=True)
class PaymentResult:
    paid: bool
    message: str
    redirect_url: str | None = None


def _new_id(prefix: str) -> str:
    return f"{prefix}_sandbox_{secrets.token_hex(12)}"


def in_use() -> bool:
    return isinstance(current_app.extensions["payment_gateway"], SandboxGateway)


# -- the clock ---------------------------------------------------------------------------------

def now() -> int:
    """The sandbox's time: real time plus however far `sandbox advance` has moved it."""
    row = db.session.get(SandboxObject, CLOCK_ID)
    return int(time.time()) + (row.data["offset"] if row else 0)


def _move_clock(seconds: int) -> None:
    row = db.session.get(SandboxObject, CLOCK_ID)
    offset = (row.data["offset"] if row else 0) + seconds
    db.session.merge(SandboxObject(id=CLOCK_ID, data={"offset": offset}))


def add_interval(start: int, interval: str) -> int:
    """One month or year after ``start``, on the same day where the calendar has it (Jan 31 → Feb 28)."""
    moment = datetime.fromtimestamp(start, timezone.utc)
    return int(add_months(moment, 12 if interval == "year" else 1).timestamp())


# -- storage -----------------------------------------------------------------------------------

def _load(object_id: str, kind: str) -> dict | None:
    row = db.session.get(SandboxObject, object_id)
    return dict(row.data) if row is not None and row.data.get("object") == kind else None


def _save(obj: dict) -> dict:
    db.session.merge(SandboxObject(id=obj["id"], data=json.loads(json.dumps(obj))))
    return obj


def get_session(session_id: str) -> dict | None:
    return _load(session_id, "checkout.session")


def portal_return_url(portal_id: str) -> str | None:
    """Where leaving the portal without a change goes (Stripe's portal links there too); None if no such session."""
    portal = _load(portal_id, "billing_portal.session")
    return portal["return_url"] if portal else None


def _card(customer_id: str) -> str:
    row = db.session.get(SandboxObject, f"card:{customer_id}")
    return row.data["number"] if row else "4242424242424242"


def _set_card(customer_id: str, number: str) -> None:
    db.session.merge(SandboxObject(id=f"card:{customer_id}", data={"object": "sandbox.card", "number": number}))


# -- the gateway ---------------------------------------------------------------------------------

class SandboxGateway:
    name = "sandbox"

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        key = request.idempotency_key
        session_id = _new_id("cs_test")
        url = f"{current_app.config['PUBLIC_URL']}/sandbox/checkout/{session_id}"
        created = now()
        data = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription" if request.interval else "payment",
            "submit_type": None if request.interval else "donate",
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
            "created": created,
            "expires_at": created + 24 * 3600,
            "description": request.description,
            #: Stripe keeps the locale the session was created with; the sandbox page shows in it.
            "locale": request.locale,
            #: The sandbox's own note of the interval; Stripe keeps it on the line item's price.
            "sandbox_interval": request.interval,
        }
        # The same idempotency key returns the object made the first time, as Stripe does.
        insert_ignore(db.session, SandboxObject, {"id": session_id, "idempotency_key": key, "data": data},
                      ["idempotency_key"])
        stored = db.session.scalars(select(SandboxObject).where(SandboxObject.idempotency_key == key)).one()
        return CheckoutSession(id=stored.id, url=stored.data["url"])

    def change_subscription(self, subscription_id: str, *, amount: int, currency: str, interval: str,
                            idempotency_key: str) -> dict:
        subscription = _subscription_or_error(subscription_id)
        item = subscription["items"]["data"][0]
        item["price"] = {**item["price"], "id": _new_id("price"), "unit_amount": amount,
                         "currency": currency.lower(), "recurring": {"interval": interval, "interval_count": 1}}
        return _publish_update(subscription)

    def pause_subscription(self, subscription_id: str, *, resumes_at: int) -> dict:
        subscription = _subscription_or_error(subscription_id)
        subscription["pause_collection"] = {"behavior": "void", "resumes_at": resumes_at}
        return _publish_update(subscription)

    def resume_subscription(self, subscription_id: str) -> dict:
        subscription = _subscription_or_error(subscription_id)
        subscription["pause_collection"] = None
        return _publish_update(subscription)

    def cancel_subscription(self, subscription_id: str, *, at_period_end: bool) -> dict:
        subscription = _subscription_or_error(subscription_id)
        if at_period_end:
            subscription["cancel_at_period_end"] = True
            return _publish_update(subscription)
        subscription.update(status="canceled", canceled_at=now(), ended_at=now())
        _save(subscription)
        _publish([_event("customer.subscription.deleted", subscription)])
        return subscription

    def create_portal_session(self, customer_id: str, return_url: str, updated_url: str | None = None) -> str:
        portal_id = _new_id("bps")
        url = f"{current_app.config['PUBLIC_URL']}/sandbox/portal/{portal_id}"
        _save({"id": portal_id, "object": "billing_portal.session", "customer": customer_id,
               "return_url": return_url, "updated_url": updated_url, "url": url, "created": now(),
               "livemode": False})
        db.session.flush()
        return url


    def delete_customer(self, customer_id: str) -> None:
        """As Stripe does: the customer's card goes, and its objects keep no email, name, phone or address."""
        from ..security.privacy import scrub_personal

        card = db.session.get(SandboxObject, f"card:{customer_id}")
        if card is not None:
            db.session.delete(card)
        for row in db.session.scalars(select(SandboxObject)):
            inner = (row.data.get("data") or {}).get("object") or {} if row.data.get("object") == "event" else {}
            if customer_id in (row.data.get("customer"), inner.get("customer")):  # its objects and events
                row.data = scrub_personal(row.data)
        db.session.commit()

    def refund(self, payment_intent_id: str, *, amount: int, idempotency_key: str) -> dict:
        existing = db.session.scalars(select(SandboxObject).where(SandboxObject.idempotency_key == idempotency_key)
                                      ).one_or_none()
        if existing is not None:  # the same key returns the same refund, as on Stripe
            return dict(existing.data)
        intent = _load(payment_intent_id, "payment_intent")
        if intent is None or intent["status"] != "succeeded":
            raise GatewayError("This payment cannot be refunded.", answered=True)
        charge = _load(intent["latest_charge"], "charge") or {
            "id": intent["latest_charge"], "object": "charge", "amount": intent["amount"],
            "currency": intent["currency"], "payment_intent": payment_intent_id, "amount_refunded": 0,
            "refunded": False, "paid": True, "status": "succeeded", "metadata": intent.get("metadata") or {},
            "created": intent["created"], "livemode": False,
        }
        if amount < 1 or amount > charge["amount"] - charge["amount_refunded"]:
            raise GatewayError("The refund is more than what is left of the payment.", answered=True)
        refund = {"id": _new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
                  "currency": charge["currency"], "payment_intent": payment_intent_id, "status": "succeeded",
                  "created": now()}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        db.session.add(SandboxObject(id=refund["id"], idempotency_key=idempotency_key, data=refund))
        _save(charge)
        _publish([_event("charge.refunded", charge)])
        return refund


    def payment_balance(self, payment_intent_id: str) -> dict | None:
        intent = _load(payment_intent_id, "payment_intent")
        if intent is None or intent["status"] != "succeeded":
            return None
        return _charge_balance(intent)

    def payment_refunds(self, payment_intent_id: str) -> list[dict]:
        refunds = db.session.scalars(select(SandboxObject).where(
            SandboxObject.id.like("re\\_sandbox\\_%", escape="\\")).order_by(SandboxObject.created_at))
        return [{**row.data, "balance_transaction": _refund_balance(row.data)} for row in refunds
                if row.data.get("payment_intent") == payment_intent_id]

    def payout_balance_transactions(self, payout_id: str) -> list[dict]:
        row = db.session.get(SandboxObject, f"txns:{payout_id}")
        if row is None:
            raise GatewayError(f"No such payout: '{payout_id}'", answered=True)
        return [dict(balance) for balance in row.data["data"]]

    def list_events(self, since: int, types: Sequence[str] | None = None) -> list[dict]:
        """The events the sandbox made (delivered or not), newest first, as Stripe lists them."""
        rows = db.session.scalars(select(SandboxObject)
                                  .where(SandboxObject.id.like("evt\\_sandbox\\_%", escape="\\"))
                                  .order_by(SandboxObject.created_at.desc(), SandboxObject.id.desc()))
        events = [dict(row.data) for row in rows if row.data.get("object") == "event"]
        return sorted((e for e in events if e["created"] >= since and (not types or e["type"] in types)),
                      key=lambda e: e["created"], reverse=True)


def _charge_balance(intent: dict) -> dict:
    """The sandbox settles at once, in the payment's currency, at 1.5 % + 0.25 (Stripe's EU card price)."""
    fee = (intent["amount"] * 15 + 999) // 1000 + 25
    charge = {"id": intent.get("latest_charge"), "object": "charge", "amount": intent["amount"],
              "currency": intent["currency"], "payment_intent": intent["id"]}
    return {"id": f"txn_for_{intent['id']}", "object": "balance_transaction", "type": "charge",
            "reporting_category": "charge", "amount": intent["amount"], "currency": intent["currency"],
            "fee": fee, "net": intent["amount"] - fee, "exchange_rate": None, "created": intent["created"],
            "source": charge}


def _refund_balance(refund: dict) -> dict:
    return {"id": f"txn_for_{refund['id']}", "object": "balance_transaction", "type": "refund",
            "reporting_category": "refund", "amount": -refund["amount"], "currency": refund["currency"], "fee": 0,
            "net": -refund["amount"], "exchange_rate": None, "created": refund["created"], "source": dict(refund)}


def payout() -> list[dict]:
    """Pay the sandbox balance out to the bank, one payout per currency, as Stripe's automatic payouts
    do: every settled charge and refund not paid out yet, then a ``payout.paid`` event for each."""
    pending: dict[str, list[tuple[SandboxObject, dict]]] = {}
    rows = db.session.scalars(select(SandboxObject).where(
        SandboxObject.id.like("pi\\_sandbox\\_%", escape="\\") | SandboxObject.id.like("re\\_sandbox\\_%", escape="\\"))
        .order_by(SandboxObject.created_at))
    for row in rows:
        obj = row.data
        if obj.get("paid_out_in"):
            continue
        if obj.get("object") == "payment_intent" and obj.get("status") == "succeeded":
            pending.setdefault(obj["currency"], []).append((row, _charge_balance(obj)))
        elif obj.get("object") == "refund":
            pending.setdefault(obj["currency"], []).append((row, _refund_balance(obj)))
    at, events, made = now(), [], []
    for currency, items in sorted(pending.items()):
        amount = sum(balance["net"] for _, balance in items)
        if amount <= 0:
            continue  # Stripe pays out only a positive balance
        payout_id = _new_id("po")
        own = {"id": f"txn_for_{payout_id}", "object": "balance_transaction", "type": "payout",
               "reporting_category": "payout", "amount": -amount, "currency": currency, "fee": 0, "net": -amount,
               "exchange_rate": None, "created": at}
        obj = {"id": payout_id, "object": "payout", "amount": amount, "currency": currency, "status": "paid",
               "arrival_date": at + 2 * 86400, "created": at, "automatic": True, "method": "standard",
               "balance_transaction": own["id"], "failure_balance_transaction": None, "failure_code": None,
               "failure_message": None, "livemode": False}
        own["source"] = dict(obj)
        _save(obj)
        db.session.merge(SandboxObject(id=f"txns:{payout_id}", data={
            "object": "sandbox.payout_transactions", "data": [balance for _, balance in items] + [own]}))
        for row, _ in items:
            row.data = {**row.data, "paid_out_in": payout_id}
        events.append(_event("payout.paid", obj, at))
        made.append(obj)
    _publish(events)
    return made


def _subscription_or_error(subscription_id: str) -> dict:
    subscription = _load(subscription_id, "subscription")
    if subscription is None:
        raise GatewayError(N_("No such subscription in the sandbox."))
    if subscription["status"] == "canceled":
        raise GatewayError(N_("This subscription has been canceled."))
    return subscription


def _publish_update(subscription: dict) -> dict:
    _save(subscription)
    _publish([_event("customer.subscription.updated", subscription)])
    return subscription


# -- paying a checkout -----------------------------------------------------------------------------

def pay(session_id: str, card_number: str) -> PaymentResult:
    """Pay an open sandbox session with a test card, then deliver Stripe's events for it."""
    row = db.session.get(SandboxObject, session_id, with_for_update=True)
    if row is None or row.data.get("object") != "checkout.session":
        raise SandboxError(N_("This checkout session does not exist."))
    session = dict(row.data)
    if session["status"] != "open":
        raise SandboxError(N_("This checkout session is no longer open."))
    card = "".join(ch for ch in card_number if ch.isdigit())
    if card not in SUCCEEDING_CARDS and card not in DECLINED_CARDS and card != DECLINES_RENEWALS:
        raise SandboxError(N_("Use a Stripe test card, such as 4242 4242 4242 4242."))

    at = now()
    intent = {
        "id": session["payment_intent"] or _new_id("pi"),
        "object": "payment_intent",
        "amount": session["amount_total"],
        "currency": session["currency"],
        "metadata": session["metadata"],
        "status": "requires_payment_method",
        "livemode": False,
        "created": at,
    }
    if card in DECLINED_CARDS:
        message = DECLINED_CARDS[card]
        intent["last_payment_error"] = {"type": "card_error", "code": "card_declined", "message": message}
        session["payment_intent"] = intent["id"] if session["mode"] == "payment" else None
        _save(intent)
        _save(session)
        _publish([_event("payment_intent.payment_failed", intent)])
        return PaymentResult(paid=False, message=message)

    intent.update(status="succeeded", amount_received=session["amount_total"], latest_charge=_new_id("ch"))
    _save(intent)
    session.update(status="complete", payment_status="paid", url=None,
                   customer_details={"email": session["customer_email"], "name": None})
    events = []
    if session["mode"] == "subscription":
        customer = _new_id("cus")
        _set_card(customer, card)
        subscription = _new_subscription(session, customer, at)
        invoice = _invoice(subscription, "subscription_create", at, paid=True, intent_id=intent["id"])
        subscription["latest_invoice"] = invoice["id"]
        session.update(customer=customer, subscription=subscription["id"], invoice=invoice["id"])
        _save(subscription)
        events += [_event("customer.subscription.created", subscription), _event("invoice.paid", invoice)]
    else:
        session["payment_intent"] = intent["id"]
        events.append(_event("payment_intent.succeeded", intent))
    _save(session)
    events.append(_event("checkout.session.completed", session))
    _publish(events)
    redirect = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    return PaymentResult(paid=True, message="Payment succeeded.", redirect_url=redirect)


def _new_subscription(session: dict, customer: str, at: int) -> dict:
    interval = session["sandbox_interval"]
    return {
        "id": _new_id("sub"),
        "object": "subscription",
        "status": "active",
        "customer": customer,
        "currency": session["currency"],
        "metadata": dict(session["metadata"]),
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "pause_collection": None,
        "created": at,
        "start_date": at,
        "livemode": False,
        "latest_invoice": None,
        "items": {"object": "list", "data": [{
            "id": _new_id("si"),
            "object": "subscription_item",
            "quantity": 1,
            "current_period_start": at,
            "current_period_end": add_interval(at, interval),
            "price": {
                "id": _new_id("price"),
                "object": "price",
                "unit_amount": session["amount_total"],
                "currency": session["currency"],
                "product": _new_id("prod"),
                "recurring": {"interval": interval, "interval_count": 1},
            },
        }]},
    }


def _invoice(subscription: dict, billing_reason: str, at: int, *, paid: bool, intent_id: str | None = None) -> dict:
    item = subscription["items"]["data"][0]
    amount = item["price"]["unit_amount"] * item["quantity"]
    intent_id = intent_id or _new_id("pi")
    invoice = {
        "id": _new_id("in"),
        "object": "invoice",
        "status": "paid" if paid else "open",
        "billing_reason": billing_reason,
        "customer": subscription["customer"],
        "currency": item["price"]["currency"],
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": 1,
        "attempted": True,
        "created": at,
        "period_start": item["current_period_start"],
        "period_end": item["current_period_end"],
        "livemode": False,
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": subscription["id"], "metadata": dict(subscription["metadata"])},
        },
        "lines": {"object": "list", "has_more": False, "data": [{
            "id": _new_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": item["price"]["currency"],
            "quantity": item["quantity"],
            "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
        }]},
        "payments": {"object": "list", "has_more": False, "data": [{
            "id": _new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": amount if paid else None,
            "status": "paid" if paid else "open",
            "payment": {"type": "payment_intent", "payment_intent": intent_id},
        }]},
        "status_transitions": {"paid_at": at if paid else None, "finalized_at": at},
    }
    if paid:
        _settle(invoice, at)
    return _save(invoice)


def _settle(invoice: dict, at: int) -> None:
    """The succeeded payment behind a paid invoice, so that it can be refunded and has a fee."""
    _save({"id": invoice["payments"]["data"][0]["payment"]["payment_intent"], "object": "payment_intent",
           "amount": invoice["amount_due"], "currency": invoice["currency"], "status": "succeeded",
           "latest_charge": _new_id("ch"), "metadata": {}, "created": at, "livemode": False})


# -- renewals: what Stripe's billing does as time passes --------------------------------------------

def advance(days: int) -> dict[str, int]:
    """Move the sandbox clock forward and play every renewal that falls due, with its events."""
    if days < 1:
        raise ValueError("days must be at least 1")
    _move_clock(days * 86400)
    until = now()
    events: list[dict] = []
    rows = db.session.scalars(select(SandboxObject).where(SandboxObject.id.like("sub\\_sandbox\\_%", escape="\\"))
                              .order_by(SandboxObject.created_at))
    for row in list(rows):
        events += _renew_due(dict(row.data), until)
    _publish(events)
    counts: dict[str, int] = {}
    for event in events:
        counts[event["type"]] = counts.get(event["type"], 0) + 1
    return counts


#: Days after a declined renewal on which Stripe's retries try the card again (attempts 2, 3 and 4).
#: After the last one the subscription stays past due, as with Stripe's "leave past-due" setting.
RETRY_DAYS = (3, 5, 7)


def _retry_due(subscription: dict, until: int) -> list[dict]:
    """Retry the latest unpaid renewal on the days its retries fall, up to ``until``."""
    invoice = _load(subscription.get("latest_invoice") or "", "invoice")
    events: list[dict] = []
    while invoice and invoice["status"] == "open" and invoice["attempt_count"] <= len(RETRY_DAYS):
        at = invoice["created"] + RETRY_DAYS[invoice["attempt_count"] - 1] * 86400
        if at > until:
            break
        invoice["attempt_count"] += 1
        if _card(subscription["customer"]) != DECLINES_RENEWALS:
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0,
                           status_transitions={**invoice["status_transitions"], "paid_at": at})
            invoice["payments"]["data"][0].update(status="paid", amount_paid=invoice["amount_due"])
            _settle(invoice, at)
            subscription["status"] = "active"
            events += [_event("invoice.paid", _save(invoice), at=at),
                       _event("customer.subscription.updated", subscription, at=at)]
        else:
            events.append(_event("invoice.payment_failed", _save(invoice), at=at))
    return events


def _renew_due(subscription: dict, until: int) -> list[dict]:
    events: list[dict] = []
    item = subscription["items"]["data"][0]
    interval = item["price"]["recurring"]["interval"]
    while subscription["status"] != "canceled":
        events += _retry_due(subscription, min(until, item["current_period_end"]))
        if item["current_period_end"] > until:
            break
        start = item["current_period_end"]
        if subscription["cancel_at_period_end"]:
            subscription.update(status="canceled", canceled_at=start, ended_at=start)
            events.append(_event("customer.subscription.deleted", subscription, at=start))
            break
        pause = subscription["pause_collection"]
        if pause and pause.get("resumes_at") and pause["resumes_at"] <= start:
            subscription["pause_collection"] = pause = None
        item.update(current_period_start=start, current_period_end=add_interval(start, interval))
        if pause:  # a paused period is not invoiced (behavior "void")
            events.append(_event("customer.subscription.updated", subscription, at=start))
            continue
        paid = _card(subscription["customer"]) != DECLINES_RENEWALS
        invoice = _invoice(subscription, "subscription_cycle", start, paid=paid)
        subscription.update(latest_invoice=invoice["id"], status="active" if paid else "past_due")
        events.append(_event("invoice.paid" if paid else "invoice.payment_failed", invoice, at=start))
        events.append(_event("customer.subscription.updated", subscription, at=start))
    _save(subscription)
    return events


def update_card(portal_id: str, card_number: str) -> str:
    """The Billing Portal stand-in: store a new card; an unpaid renewal is paid with it at once."""
    portal = _load(portal_id, "billing_portal.session")
    if portal is None:
        raise SandboxError(N_("This portal session does not exist."))
    card = "".join(ch for ch in card_number if ch.isdigit())
    if card not in SUCCEEDING_CARDS and card != DECLINES_RENEWALS:
        raise SandboxError(N_("Use a Stripe test card that succeeds, such as 4242 4242 4242 4242."))
    _set_card(portal["customer"], card)
    events: list[dict] = []
    at = now()
    for row in list(db.session.scalars(select(SandboxObject).where(SandboxObject.id.like("sub\\_sandbox\\_%",
                                                                                          escape="\\")))):
        subscription = dict(row.data)
        if subscription["customer"] != portal["customer"] or subscription["status"] != "past_due":
            continue
        invoice = _load(subscription["latest_invoice"], "invoice")
        if card != DECLINES_RENEWALS and invoice and invoice["status"] == "open":
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0,
                           attempt_count=invoice["attempt_count"] + 1,
                           status_transitions={**invoice["status_transitions"], "paid_at": at})
            invoice["payments"]["data"][0].update(status="paid", amount_paid=invoice["amount_due"])
            _settle(invoice, at)
            _save(invoice)
            subscription["status"] = "active"
            _save(subscription)
            events += [_event("invoice.paid", invoice, at=at), _event("customer.subscription.updated", subscription,
                                                                       at=at)]
    _publish(events)
    return portal.get("updated_url") or portal["return_url"]


# -- events ------------------------------------------------------------------------------------------

def _event(event_type: str, obj: dict, at: int | None = None) -> dict:
    event = {
        "id": _new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": at if at is not None else now(),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": json.loads(json.dumps(obj))},
    }
    return _save(event)


def _publish(events: list[dict]) -> None:
    """Settle the sandbox's state, then deliver the events, as Stripe does after its own commit."""
    db.session.commit()
    for event in events:
        deliver(event)


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
