"""The Stripe implementation of the gateway, through the official SDK's StripeClient."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import stripe

from ..i18n import N_
from .gateway import CheckoutRequest, CheckoutSession, GatewayError

log = logging.getLogger(__name__)


class StripeGateway:
    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None, **client_options):
        if api_base:
            client_options["base_addresses"] = {"api": api_base.rstrip("/")}
        # A client per app, never the module-level stripe.api_key.
        self.client = stripe.StripeClient(secret_key, **{"max_network_retries": 2, **client_options})

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        """https://docs.stripe.com/api/checkout/sessions/create"""
        price_data = {
            "currency": request.currency.lower(),
            "unit_amount": request.amount,
            "product_data": {"name": request.description},
        }
        params = {
            "line_items": [{"quantity": 1, "price_data": price_data}],
            "customer_email": request.email,
            "client_reference_id": request.attempt_id,
            "metadata": request.metadata,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "locale": checkout_locale(request.locale),
        }
        if request.interval:
            # https://docs.stripe.com/payments/checkout/build-subscriptions
            price_data["recurring"] = {"interval": request.interval}
            params.update(mode="subscription", subscription_data={"metadata": request.metadata})
        else:
            params.update(mode="payment", submit_type="donate", payment_intent_data={"metadata": request.metadata})
        session = self._call(f"a checkout session for attempt {request.attempt_id}",
                             self.client.v1.checkout.sessions.create, params,
                             {"idempotency_key": request.idempotency_key})
        return CheckoutSession(id=session["id"], url=session["url"])

    def change_subscription(self, subscription_id: str, *, amount: int, currency: str, interval: str,
                            idempotency_key: str) -> dict:
        """https://docs.stripe.com/billing/subscriptions/change-price"""
        subscription = self._call(f"subscription {subscription_id}", self.client.v1.subscriptions.retrieve,
                                  subscription_id).to_dict()
        item = subscription["items"]["data"][0]
        params = {
            "items": [{
                "id": item["id"],
                "quantity": 1,
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": amount,
                    "recurring": {"interval": interval},
                    "product": _id(item["price"]["product"]),
                },
            }],
            "proration_behavior": "none",
        }
        if item["price"]["recurring"]["interval"] != interval and item.get("current_period_end"):
            # A new interval resets the billing anchor and would charge the new price at once; a trial
            # until the end of the period already paid for moves the first new charge to that day.
            params["trial_end"] = item["current_period_end"]
        return self._update(subscription_id, params, {"idempotency_key": idempotency_key})

    def pause_subscription(self, subscription_id: str, *, resumes_at: int) -> dict:
        """https://docs.stripe.com/billing/subscriptions/pause-payment"""
        return self._update(subscription_id, {"pause_collection": {"behavior": "void", "resumes_at": resumes_at}})

    def resume_subscription(self, subscription_id: str) -> dict:
        return self._update(subscription_id, {"pause_collection": ""})  # "" unsets the field

    def cancel_subscription(self, subscription_id: str, *, at_period_end: bool) -> dict:
        """https://docs.stripe.com/billing/subscriptions/cancel"""
        if at_period_end:
            return self._update(subscription_id, {"cancel_at_period_end": True})
        return self._call(f"cancelling subscription {subscription_id}", self.client.v1.subscriptions.cancel,
                          subscription_id).to_dict()

    def create_portal_session(self, customer_id: str, return_url: str, updated_url: str | None = None) -> str:
        """https://docs.stripe.com/customer-management/integrate-customer-portal; with ``updated_url``, the portal
        opens on the card update and sends the supporter there once it is done (a portal deep link,
        https://docs.stripe.com/customer-management/portal-deep-links), to ``return_url`` if they leave."""
        params: dict = {"customer": customer_id, "return_url": return_url}
        if updated_url:
            params["flow_data"] = {"type": "payment_method_update", "after_completion": {
                "type": "redirect", "redirect": {"return_url": updated_url}}}
        session = self._call(f"a portal session for customer {customer_id}",
                             self.client.v1.billing_portal.sessions.create, params)
        return session["url"]

    def delete_customer(self, customer_id: str) -> None:
        """https://docs.stripe.com/api/customers/delete: Stripe deletes the customer, cancels their
        subscriptions and keeps only what it must by law. Deleting one twice (or one Stripe never had)
        answers ``resource_missing``: the customer is gone either way."""
        try:
            self.client.v1.customers.delete(customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return
            log.warning("Stripe refused deleting customer %s: %s", customer_id, exc)
            raise GatewayError(N_("The payment provider refused to delete the customer; nothing was erased."),
                               answered=True) from exc
        except stripe.StripeError as exc:
            log.warning("Stripe refused deleting customer %s: %s", customer_id, exc)
            raise GatewayError(N_("The payment provider is unavailable; nothing was erased. Please try again."),
                               answered=exc.http_status is not None) from exc

    def payment_balance(self, payment_intent_id: str) -> dict | None:
        """https://docs.stripe.com/api/balance_transactions/object"""
        intent = self._call(f"the balance of {payment_intent_id}", self.client.v1.payment_intents.retrieve,
                            payment_intent_id, {"expand": ["latest_charge.balance_transaction"]}).to_dict()
        charge = intent.get("latest_charge")
        balance = charge.get("balance_transaction") if isinstance(charge, dict) else None
        return balance if isinstance(balance, dict) else None

    def refund(self, payment_intent_id: str, *, amount: int, idempotency_key: str) -> dict:
        """https://docs.stripe.com/api/refunds/create"""
        refund = self._call(f"a refund of {payment_intent_id}", self.client.v1.refunds.create,
                            {"payment_intent": payment_intent_id, "amount": amount},
                            {"idempotency_key": idempotency_key})
        return refund.to_dict()

    def payment_refunds(self, payment_intent_id: str) -> list[dict]:
        """https://docs.stripe.com/api/refunds/list"""
        return self._all(f"the refunds of {payment_intent_id}", self.client.v1.refunds.list,
                         {"payment_intent": payment_intent_id, "expand": ["data.balance_transaction"]})

    def payout_balance_transactions(self, payout_id: str) -> list[dict]:
        """https://docs.stripe.com/api/balance_transactions/list (``payout`` filter)"""
        return self._all(f"the transactions of {payout_id}", self.client.v1.balance_transactions.list,
                         {"payout": payout_id, "expand": ["data.source"]})

    def list_events(self, since: int, types: Sequence[str] | None = None) -> list[dict]:
        """https://docs.stripe.com/api/events/list (``created[gte]``, ``types``)"""
        params: dict = {"created": {"gte": since}}
        if types:
            params["types"] = list(types)
        return self._all("the events", self.client.v1.events.list, params)

    def _all(self, what: str, method, params: dict) -> list[dict]:
        """Every page of a list, 100 at a time; each request goes through ``_call``, so an error on
        any page is a GatewayError and nothing half-read is returned."""
        found: list[dict] = []
        while True:
            page = self._call(what, method, {**params, "limit": 100,
                                             **({"starting_after": found[-1]["id"]} if found else {})})
            found += [item.to_dict() for item in page.data]
            if not page.has_more or not page.data:
                return found

    def _update(self, subscription_id: str, params: dict, options: dict | None = None) -> dict:
        args = (subscription_id, params) + ((options,) if options else ())
        return self._call(f"updating subscription {subscription_id}", self.client.v1.subscriptions.update,
                          *args).to_dict()

    @staticmethod
    def _call(what: str, method, *args):
        try:
            return method(*args)
        except stripe.StripeError as exc:
            log.warning("Stripe refused %s: %s", what, exc)
            raise GatewayError(N_("The payment provider is unavailable. Nothing was charged; please try again."),
                               answered=exc.http_status is not None) from exc


def _id(value) -> str:
    """An id that may arrive expanded into its object."""
    return value if isinstance(value, str) else value["id"]


#: The languages Stripe Checkout speaks that we ask for by name; for any other reader Checkout picks from the
#: browser ("auto"). https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-locale
CHECKOUT_LOCALES = frozenset({"de", "en", "fr"})


def checkout_locale(locale: str | None) -> str:
    """Stripe Checkout's ``locale`` for the reader's locale: ``de_AT`` -> ``de``; ``auto`` for the rest."""
    language = (locale or "").replace("-", "_").split("_")[0].lower()
    return language if language in CHECKOUT_LOCALES else "auto"
