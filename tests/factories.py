"""Builders for test data: donation requests, attempts, and signed Stripe-shaped events."""
from __future__ import annotations

import json
import secrets
import time

import stripe
from sqlalchemy import select

from donations.campaigns.models import Campaign
from donations.checkout.operations import DonationRequest, start_donation
from donations.extensions import db
from donations.ledger.models import Frequency
from donations.money import Money

API_VERSION = stripe.api_version


def default_campaign() -> Campaign:
    return db.session.scalars(select(Campaign).where(Campaign.slug == "default")).one()


def donation_request(amount: int = 2500, currency: str = "EUR", email: str = "reader@example.com",
                     name: str | None = "Ada Reader", article_url: str | None = "https://publisher.example/news/1",
                     cover_fees: bool = False) -> DonationRequest:
    return DonationRequest(
        campaign=default_campaign(), gift=Money(amount, currency), frequency=Frequency.ONE_OFF,
        email=email, name=name, article_url=article_url, cover_fees=cover_fees,
    )


def make_attempt(**kwargs):
    """An attempt with its (sandbox) checkout session, as the donation form makes it."""
    attempt = start_donation(donation_request(**kwargs))
    db.session.flush()
    return attempt


def checkout_session(attempt=None, *, payment_status: str = "paid", status: str = "complete",
                     session_id: str | None = None, metadata: dict | None = None, mode: str = "payment",
                     amount: int | None = None, currency: str | None = None) -> dict:
    """A Checkout Session in the shape of the API version the pinned SDK uses."""
    if metadata is None:
        metadata = {"attempt_id": attempt.id, "campaign": "default", "article_url": attempt.article_url or ""}
    return {
        "id": session_id or (attempt.checkout_session_id if attempt else f"cs_test_{secrets.token_hex(8)}"),
        "object": "checkout.session",
        "mode": mode,
        "status": status,
        "payment_status": payment_status,
        "amount_subtotal": amount if amount is not None else (attempt.amount if attempt else 2500),
        "amount_total": amount if amount is not None else (attempt.amount if attempt else 2500),
        "currency": (currency or (attempt.currency if attempt else "EUR")).lower(),
        "customer": None,
        "customer_email": attempt.email if attempt else "someone@example.com",
        "customer_details": {"email": attempt.email if attempt else "someone@example.com", "name": None},
        "client_reference_id": attempt.id if attempt else None,
        "metadata": metadata,
        "payment_intent": f"pi_test_{secrets.token_hex(8)}",
        "invoice": None,
        "subscription": None,
        "submit_type": "donate",
        "livemode": False,
        "created": int(time.time()) - 60,
    }


def event(event_type: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> dict:
    return {
        "id": event_id or f"evt_test_{secrets.token_hex(10)}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created or int(time.time()),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }


def signed(event_or_payload, secret: str, timestamp: int | None = None) -> tuple[bytes, dict]:
    """The body and headers Stripe would send."""
    payload = event_or_payload if isinstance(event_or_payload, str) else json.dumps(event_or_payload)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def post_event(client, evt: dict, timestamp: int | None = None):
    secret = client.application.config["STRIPE_WEBHOOK_SECRET"]
    body, headers = signed(evt, secret, timestamp)
    return client.post("/stripe/webhook", data=body, headers=headers)
