"""The Stripe implementation of the gateway, through the official SDK's StripeClient."""
from __future__ import annotations

import logging

import stripe

from .gateway import CheckoutRequest, CheckoutSession, GatewayError

log = logging.getLogger(__name__)


class StripeGateway:
    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None, **client_options):
        if api_base:
            client_options["base_addresses"] = {"api": api_base.rstrip("/")}
        # A client per app, never the module-level stripe.api_key.
        self.client = stripe.StripeClient(secret_key, max_network_retries=2, **client_options)

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        """https://docs.stripe.com/api/checkout/sessions/create"""
        params = {
            "mode": "payment",
            "submit_type": "donate",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount,
                        "product_data": {"name": request.description},
                    },
                }
            ],
            "customer_email": request.email,
            "client_reference_id": request.attempt_id,
            "metadata": request.metadata,
            "payment_intent_data": {"metadata": request.metadata},
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        try:
            session = self.client.v1.checkout.sessions.create(
                params, {"idempotency_key": request.idempotency_key}
            )
        except stripe.StripeError as exc:
            log.warning("Stripe refused a checkout session for attempt %s: %s", request.attempt_id, exc)
            raise GatewayError("The payment provider is unavailable. Nothing was charged; please try again.",
                               answered=exc.http_status is not None) from exc
        return CheckoutSession(id=session["id"], url=session["url"])
