"""Stripe's fee and net reach the books from the balance transaction, filled in by a scheduled job."""
from __future__ import annotations

from sqlalchemy import select

from donations.extensions import db
from donations.ledger.jobs import fill_missing_fees
from donations.ledger.models import Donation
from donations.payments.gateway import GatewayError
from tests.functional.test_sandbox import open_checkout, pay


def paid_gift(client) -> Donation:
    pay(client, open_checkout(client), "4242424242424242")
    return db.session.scalars(select(Donation).order_by(Donation.id.desc())).first()


def test_job_fills_fee_and_net_of_paid_donations_once(app_ctx, client):
    donation = paid_gift(client)
    assert donation.fee is None  # Stripe settles after the events arrive

    assert fill_missing_fees() == {"filled": 1, "not_settled": 0, "failed": 0}
    assert fill_missing_fees() == {"filled": 0, "not_settled": 0, "failed": 0}

    db.session.refresh(donation)
    # Sandbox pricing: 1.5 % of €25.00, rounded up, plus €0.25.
    assert (donation.fee, donation.net, donation.settlement_currency, donation.exchange_rate) == (
        63, 2437, "EUR", None)
    assert donation.fee + donation.net == donation.amount


def test_one_failing_donation_does_not_stop_the_others(app_ctx, client, monkeypatch, caplog):
    first, second = paid_gift(client), paid_gift(client)
    gateway = client.application.extensions["payment_gateway"]
    real = gateway.payment_balance

    def flaky(intent_id):
        if intent_id == first.stripe_payment_intent_id:
            raise GatewayError("Stripe is down")
        return real(intent_id)

    monkeypatch.setattr(gateway, "payment_balance", flaky)

    assert fill_missing_fees() == {"filled": 1, "not_settled": 0, "failed": 1}
    db.session.refresh(first)
    db.session.refresh(second)
    assert first.fee is None and second.fee == 63
    assert f"fee of donation {first.id} not fetched" in caplog.text


def test_export_shows_fee_and_net_once_known(app_ctx, client):
    donation = paid_gift(client)
    fill_missing_fees()
    day = donation.paid_at.date().isoformat()

    result = client.application.test_cli_runner().invoke(
        args=["export", "donations", "--from", day, "--to", day, "--format", "csv"])

    row = result.output.splitlines()[1].split(",")
    assert (row[6], row[7]) == ("0.63", "24.37")
