"""Done when (issue 8): a card-testing burst makes at most the configured number of Stripe calls.

300 POSTs to /donate within a minute from one address that rotates X-Forwarded-For, against the production
defaults of the limits and the fill time: after the per-address threshold every answer is 429 with Retry-After,
and Stripe (the fake Stripe API on loopback, through the real StripeGateway) is called at most as often as the
per-address limit allows. The same with one trusted proxy in front, where the attacker prepends fake addresses;
and the API from many addresses with one email address.
"""
from __future__ import annotations

import random
import time

import pytest

from donations.payments.stripe_gateway import StripeGateway
from donations.security.antifraud import parse_limits
from tests.functional.antifraud_helpers import PRODUCTION_DEFENCES, API, api_body, app_with, filled_form, form_page
from tests.stripe_fake import fake_stripe  # noqa: F401  (registers the fixture)

BURST = 300
PER_IP_PER_MINUTE = min(item.amount for item in parse_limits(PRODUCTION_DEFENCES["CHECKOUT_LIMIT_PER_IP"])
                        if item.GRANULARITY.name == "minute")
PER_EMAIL_PER_MINUTE = min(item.amount for item in parse_limits(PRODUCTION_DEFENCES["CHECKOUT_LIMIT_PER_EMAIL"])
                           if item.GRANULARITY.name == "minute")


def random_address(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


@pytest.fixture
def burst_app(app, connection, fake_stripe, tmp_path):  # noqa: F811
    """Build an app with the production defences and ``environ``, taking payments through the fake Stripe."""
    def build(**environ):
        return app_with(app, connection, str(tmp_path), **PRODUCTION_DEFENCES, **environ)
    return build


def run_form_burst(other, fake, *, real_client: str, remote_addr: str, forwarded) -> dict:
    client = other.test_client()
    environ = {"REMOTE_ADDR": remote_addr}
    html = form_page(client, **environ)
    time.sleep(float(PRODUCTION_DEFENCES["FORM_MIN_SECONDS"]) + 0.2)  # the one wait a patient bot makes
    rng = random.Random(8)
    statuses, retry_afters = [], []
    started = time.monotonic()
    for n in range(BURST):
        response = client.post("/donate", data=filled_form(html, email=f"card{n}@example.net",
                                                           amount=str(rng.choice([1, 2, 5]))),
                               headers={"X-Forwarded-For": forwarded(rng)}, environ_base=environ)
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry_afters.append(response.headers.get("Retry-After"))
    elapsed = time.monotonic() - started
    figures = {"requests": BURST, "through": statuses.count(303), "429": statuses.count(429),
               "gateway_calls": len(fake.calls()), "seconds": round(elapsed, 1), "client": real_client}
    print(f"\ncard-testing burst: {figures}")
    return {"statuses": statuses, "retry_afters": retry_afters, "elapsed": elapsed, **figures}


def assert_capped(result: dict) -> None:
    assert result["elapsed"] < 60  # 300 a minute, as the attack
    statuses = result["statuses"]
    # The first few pass (as a reader would), then the address is limited: every later answer is 429.
    assert statuses[:PER_IP_PER_MINUTE] == [303] * PER_IP_PER_MINUTE
    assert statuses[PER_IP_PER_MINUTE:] == [429] * (BURST - PER_IP_PER_MINUTE)
    assert all(value and value.isdigit() and 0 < int(value) <= 60 for value in result["retry_afters"])
    assert result["gateway_calls"] == result["through"] <= PER_IP_PER_MINUTE


def test_a_burst_rotating_x_forwarded_for_without_trusted_proxies_is_capped(burst_app, fake_stripe):  # noqa: F811
    with burst_app(TRUSTED_PROXIES="0") as other:
        other.extensions["payment_gateway"] = StripeGateway("sk_test_123", fake_stripe.url)
        # No proxy is trusted: the header is the attacker's own invention and is ignored.
        result = run_form_burst(other, fake_stripe, real_client="203.0.113.7", remote_addr="203.0.113.7",
                                forwarded=random_address)
    assert_capped(result)


def test_a_burst_prepending_fake_addresses_behind_one_trusted_proxy_is_capped(burst_app, fake_stripe):  # noqa: F811
    with burst_app(TRUSTED_PROXIES="1") as other:
        other.extensions["payment_gateway"] = StripeGateway("sk_test_123", fake_stripe.url)
        # Our proxy (10.0.0.2) appends the address it saw; the attacker puts any number of fake ones before it.
        result = run_form_burst(
            other, fake_stripe, real_client="203.0.113.7", remote_addr="10.0.0.2",
            forwarded=lambda rng: ", ".join([random_address(rng) for _ in range(rng.randint(1, 3))] + ["203.0.113.7"]))
        assert_capped(result)

        # The limit was the attacker's, not the proxy's: another reader behind the same proxy still gives.
        reader = other.test_client()
        html = form_page(reader, REMOTE_ADDR="10.0.0.2")
        time.sleep(float(PRODUCTION_DEFENCES["FORM_MIN_SECONDS"]) + 0.2)
        response = reader.post("/donate", data=filled_form(html, email="reader@example.org"),
                               headers={"X-Forwarded-For": "198.51.100.9"}, environ_base={"REMOTE_ADDR": "10.0.0.2"})
        assert response.status_code == 303
        assert len(fake_stripe.calls()) == result["gateway_calls"] + 1


def test_the_api_from_rotating_addresses_with_one_email_is_capped_by_the_email_limit(burst_app,
                                                                                   fake_stripe):  # noqa: F811
    with burst_app(TRUSTED_PROXIES="0") as other:
        other.extensions["payment_gateway"] = StripeGateway("sk_test_123", fake_stripe.url)
        client = other.test_client()
        rng = random.Random(9)
        statuses, retry_afters = [], []
        started = time.monotonic()
        for n in range(BURST):
            # Every request from an address of its own (as a botnet would), all for one email address.
            response = client.post(API, json=api_body(email="Victim@Example.com" if n % 2 else "victim@example.com",
                                                      amount=rng.choice([100, 200, 500])),
                                   environ_base={"REMOTE_ADDR": random_address(rng)})
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_afters.append(response.headers.get("Retry-After"))
                assert response.get_json()["retry_after"] > 0
        elapsed = time.monotonic() - started
    figures = {"requests": BURST, "through": statuses.count(201), "429": statuses.count(429),
               "gateway_calls": len(fake_stripe.calls()), "seconds": round(elapsed, 1)}
    print(f"\nAPI burst, one email: {figures}")
    assert elapsed < 60
    assert statuses[:PER_EMAIL_PER_MINUTE] == [201] * PER_EMAIL_PER_MINUTE
    assert statuses[PER_EMAIL_PER_MINUTE:] == [429] * (BURST - PER_EMAIL_PER_MINUTE)
    assert all(value and value.isdigit() for value in retry_afters)
    assert figures["gateway_calls"] == figures["through"] <= PER_EMAIL_PER_MINUTE
