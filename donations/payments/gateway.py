"""One interface for taking payments; Stripe and the sandbox both implement it, chosen by config."""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from flask import Flask, current_app


class GatewayError(RuntimeError):
    """The payment provider could not be reached or refused the request; nothing was charged."""

    def __init__(self, message: str, *, answered: bool = False):
        super().__init__(message)
        #: True when the provider answered with an error (it may have saved that answer under the
        #: idempotency key); False when it could not be reached and may still have done the work.
        self.answered = answered


@dataclass(frozen=True)
class CheckoutRequest:
    #: Our attempt id: the idempotency key of the create call, and metadata on everything Stripe makes.
    attempt_id: str
    amount: int
    currency: str
    frequency: str
    email: str
    description: str
    success_url: str
    cancel_url: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: How many earlier tries the provider answered with an error.
    attempt_try: int = 0
    #: The reader's locale (``de``, ``fr_CH``): the checkout page speaks their language.
    locale: str = "en"

    @property
    def idempotency_key(self) -> str:
        key = f"donations-checkout-session-{self.attempt_id}"
        return f"{key}-{self.attempt_try}" if self.attempt_try else key

    @property
    def interval(self) -> str | None:
        """Stripe's recurring interval, or None for a one-off payment."""
        return {"monthly": "month", "yearly": "year"}.get(self.frequency)


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@runtime_checkable
class PaymentGateway(Protocol):
    """What the app needs from a payment provider. Subscription methods return the subscription
    as a plain dict in Stripe's shape, which the ledger applies exactly as it applies an event."""

    name: str

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        """Create (or, for the same attempt, return again) a hosted checkout page for one gift.
        A monthly or yearly request opens a subscription."""
        ...

    def change_subscription(self, subscription_id: str, *, amount: int, currency: str, interval: str,
                            idempotency_key: str) -> dict:
        """New amount or interval from the next period on, without proration."""
        ...

    def pause_subscription(self, subscription_id: str, *, resumes_at: int) -> dict:
        """Collect nothing until ``resumes_at`` (a Unix time)."""
        ...

    def resume_subscription(self, subscription_id: str) -> dict:
        ...

    def cancel_subscription(self, subscription_id: str, *, at_period_end: bool) -> dict:
        ...

    def create_portal_session(self, customer_id: str, return_url: str, updated_url: str | None = None) -> str:
        """A page where the supporter updates their card; returns its URL. They come back to ``return_url`` when
        they leave it, and to ``updated_url`` (when given) once their card is saved."""
        ...

    def payment_balance(self, payment_intent_id: str) -> dict | None:
        """The balance transaction of a payment's charge as a dict (``fee``, ``net``, ``currency``,
        ``exchange_rate``), or None while Stripe has not settled it yet."""
        ...

    def refund(self, payment_intent_id: str, *, amount: int, idempotency_key: str) -> dict:
        """Refund ``amount`` (minor units) of a payment; the ledger changes when ``charge.refunded`` arrives."""
        ...

    def payment_refunds(self, payment_intent_id: str) -> list[dict]:
        """The refunds of a payment, each with its ``balance_transaction`` expanded once Stripe has one."""
        ...

    def payout_balance_transactions(self, payout_id: str) -> list[dict]:
        """Every balance transaction paid out in a payout, the payout's own included, each with its
        ``source`` expanded (the charge, refund, dispute or payout), all pages."""
        ...

    def delete_customer(self, customer_id: str) -> None:
        """Delete the customer and what the provider holds about them (GDPR erasure); a customer the
        provider no longer knows counts as deleted. GatewayError when the provider refuses."""
        ...

    def list_events(self, since: int, types: Sequence[str] | None = None) -> list[dict]:
        """Every event created at or after ``since`` (a Unix time), of ``types`` when given (at most 20),
        newest first as Stripe lists them, all pages, each a plain dict shaped as a webhook's body.
        Stripe keeps events for 30 days."""
        ...


def init_gateway(app: Flask) -> None:
    """Pick the gateway from the configuration: Stripe with a secret key, else the sandbox."""
    if app.config["STRIPE_SECRET_KEY"]:
        from .stripe_gateway import StripeGateway

        gateway: PaymentGateway = StripeGateway(app.config["STRIPE_SECRET_KEY"], app.config["STRIPE_API_BASE"])
    else:
        from .sandbox_gateway import SandboxGateway

        gateway = SandboxGateway()
    app.extensions["payment_gateway"] = gateway


def get_gateway() -> PaymentGateway:
    return current_app.extensions["payment_gateway"]
