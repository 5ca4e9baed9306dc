"""Builders for Stripe-shaped recurring objects: subscriptions, invoices and subscription-mode Checkout Sessions.

The shapes follow the API version the pinned SDK speaks (2025-03-31 and later, as the sandbox builds them):
an invoice names its subscription and the subscription's metadata under
``parent.subscription_details``, its payment intent under ``payments.data[].payment.payment_intent``
and its period under ``lines.data[].period``; a subscription keeps its price, interval and
``current_period_end`` on ``items.data[0]``. Our metadata, ``{"attempt_id": ...}``, rides on the
subscription (Checkout's ``subscription_data.metadata``) and is copied by Stripe onto each invoice.

Also here: ``make_recurring_attempt``, a monthly or yearly attempt as the donation form makes it.
"""
from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, timezone

from donations.checkout.operations import start_donation
from donations.extensions import db
from donations.ledger.models import Frequency
from donations.payments.sandbox_gateway import add_interval
from tests.factories import donation_request

#: Ours, unless a test passes its own: what start_donation puts on every Stripe object it causes.
OURS = object()


def ts(moment: datetime) -> int:
    """A Unix time, as Stripe sends them."""
    return int(moment.timestamp())


def at(value: int) -> datetime:
    return datetime.fromtimestamp(value, timezone.utc)


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(8)}"


def our_metadata(attempt_id: str) -> dict[str, str]:
    return {"attempt_id": attempt_id, "campaign": "default", "article_url": "https://publisher.example/news/1"}


def _metadata(attempt_id: str | None, metadata) -> dict:
    if metadata is not OURS:
        return dict(metadata or {})
    return our_metadata(attempt_id) if attempt_id else {}


# -- attempts ------------------------------------------------------------------------------------

def make_recurring_attempt(frequency: Frequency = Frequency.MONTHLY, **kwargs):
    """A monthly (or yearly) attempt with its sandbox checkout session, as the donation form makes it."""
    attempt = start_donation(replace(donation_request(**kwargs), frequency=frequency))
    db.session.flush()
    return attempt


# -- subscriptions -------------------------------------------------------------------------------

def subscription(attempt_id: str | None, *, subscription_id: str, customer: str = "cus_test_1",
                 amount: int = 1000, currency: str = "eur", interval: str = "month", quantity: int = 1,
                 status: str = "active", period_start: int, period_end: int, created: int | None = None,
                 cancel_at_period_end: bool = False, pause_resumes_at: int | None = None,
                 canceled_at: int | None = None, metadata=OURS) -> dict:
    """A Subscription object; ``pause_resumes_at`` sets ``pause_collection`` (behavior void)."""
    return {
        "id": subscription_id,
        "object": "subscription",
        "status": status,
        "customer": customer,
        "currency": currency.lower(),
        "metadata": _metadata(attempt_id, metadata),
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": period_end if cancel_at_period_end else None,
        "canceled_at": canceled_at,
        "ended_at": canceled_at if status == "canceled" else None,
        "pause_collection": {"behavior": "void", "resumes_at": pause_resumes_at} if pause_resumes_at else None,
        "created": created if created is not None else period_start,
        "start_date": created if created is not None else period_start,
        "livemode": False,
        "latest_invoice": None,
        "items": {"object": "list", "has_more": False, "data": [{
            "id": f"si_{subscription_id}",
            "object": "subscription_item",
            "quantity": quantity,
            "current_period_start": period_start,
            "current_period_end": period_end,
            "price": {
                "id": new_id("price"),
                "object": "price",
                "unit_amount": amount,
                "currency": currency.lower(),
                "product": "prod_test_donation",
                "recurring": {"interval": interval, "interval_count": 1},
            },
        }]},
    }


# -- invoices ------------------------------------------------------------------------------------

def invoice(attempt_id: str | None, *, subscription_id: str | None, invoice_id: str | None = None,
            paid: bool = True, amount: int = 1000, amount_paid: int | None = None, currency: str = "eur",
            billing_reason: str = "subscription_cycle", attempt_count: int = 1, created: int,
            period_start: int, period_end: int, customer: str = "cus_test_1", payment_intent: str | None = None,
            metadata=OURS) -> dict:
    """An Invoice of a subscription, paid or (``paid=False``) with its latest payment attempt declined.

    ``subscription_id=None`` makes an invoice that belongs to no subscription (``parent`` is null).
    """
    paid_amount = (amount if paid else 0) if amount_paid is None else amount_paid
    payment_intent = payment_intent or new_id("pi")
    parent = None
    if subscription_id is not None:
        parent = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": subscription_id, "metadata": _metadata(attempt_id, metadata)},
        }
    return {
        "id": invoice_id or new_id("in"),
        "object": "invoice",
        "status": "paid" if paid else "open",
        "billing_reason": billing_reason,
        "customer": customer,
        "currency": currency.lower(),
        "amount_due": amount,
        "amount_paid": paid_amount,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": attempt_count,
        "attempted": True,
        "created": created,
        "period_start": period_start,
        "period_end": period_end,
        "livemode": False,
        "parent": parent,
        "lines": {"object": "list", "has_more": False, "data": [{
            "id": new_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": currency.lower(),
            "quantity": 1,
            "period": {"start": period_start, "end": period_end},
        }]},
        "payments": {"object": "list", "has_more": False, "data": [{
            "id": new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": paid_amount if paid else None,
            "status": "paid" if paid else "open",
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        }]},
        "status_transitions": {"paid_at": created if paid else None, "finalized_at": created},
    }


# -- checkout sessions ---------------------------------------------------------------------------

def subscription_checkout_session(attempt, *, subscription_id: str | None, customer: str = "cus_test_1",
                                  invoice_id: str | None = None, payment_status: str = "paid",
                                  created: int | None = None, metadata=OURS) -> dict:
    """A completed Checkout Session in subscription mode for ``attempt`` (or for no attempt of ours)."""
    attempt_id = attempt.id if attempt is not None else None
    email = attempt.email if attempt is not None else "someone@example.com"
    amount = attempt.amount if attempt is not None else 1000
    return {
        "id": (attempt.checkout_session_id if attempt is not None else None) or new_id("cs"),
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": payment_status,
        "amount_subtotal": amount,
        "amount_total": amount,
        "currency": (attempt.currency if attempt is not None else "eur").lower(),
        "customer": customer,
        "customer_email": email,
        "customer_details": {"email": email, "name": None},
        "client_reference_id": attempt_id,
        "metadata": _metadata(attempt_id, metadata),
        "payment_intent": None,
        "invoice": invoice_id,
        "subscription": subscription_id,
        "submit_type": None,
        "livemode": False,
        "created": created if created is not None else 1_700_000_000,
    }


# -- one gift's objects ----------------------------------------------------------------------------

DAY = 86400
#: When every gift in the tests starts; MONTHS[k] is k monthly periods later.
T0 = ts(datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc))
MONTHS = [T0]
for _ in range(13):
    MONTHS.append(add_interval(MONTHS[-1], "month"))


class Gift:
    """One supporter's subscription as Stripe knows it; builds the objects Stripe would send about it."""

    def __init__(self, attempt, interval: str = "month"):
        self.attempt = attempt
        self.id = new_id("sub")
        self.customer = new_id("cus")
        self.interval = interval
        self.period_end = MONTHS[1] if interval == "month" else add_interval(T0, "year")

    def subscription(self, **overrides) -> dict:
        values = dict(subscription_id=self.id, customer=self.customer, amount=self.attempt.amount,
                      currency=self.attempt.currency, interval=self.interval, period_start=T0,
                      period_end=self.period_end, created=T0)
        return subscription(self.attempt.id, **{**values, **overrides})

    def invoice(self, **overrides) -> dict:
        values = dict(subscription_id=self.id, customer=self.customer, amount=self.attempt.amount,
                      currency=self.attempt.currency, billing_reason="subscription_create", created=T0 + 1,
                      period_start=T0, period_end=self.period_end)
        return invoice(self.attempt.id, **{**values, **overrides})

    def checkout(self, **overrides) -> dict:
        values = dict(subscription_id=self.id, customer=self.customer, created=T0)
        return subscription_checkout_session(self.attempt, **{**values, **overrides})
