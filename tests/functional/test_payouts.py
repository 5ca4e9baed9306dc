"""Payouts: every line of the books knows its payout, and a payout's lines add up to what reached the bank.

Built from Stripe-shaped balance transactions (https://docs.stripe.com/api/balance_transactions/object)
served by a fake Stripe on loopback to the real StripeGateway, with pagination and ``expand[]=data.source``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.ledger.jobs import settle_books
from donations.ledger.models import Dispute, Donation, LedgerLine, LineKind, Payout
from donations.ledger.payouts import close_books, reconcile_payouts
from donations.payments.stripe_gateway import StripeGateway
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.stripe_fake import FakeStripe, RecordedRequest, _json, serving

SECRET_KEY = "sk_test_123"
T0 = 1_793_000_000  # 2026-10-26, a Monday


@dataclass
class FakeStripeBalance(FakeStripe):
    """FakeStripe plus the balance: GET /v1/balance_transactions?payout=… and GET /v1/refunds?payment_intent=…"""

    #: Balance transactions by payout id, with their sources expanded; collapsed to ids unless asked to expand.
    payouts: dict[str, list[dict]] = field(default_factory=dict)
    refunds: dict[str, list[dict]] = field(default_factory=dict)
    #: Stripe pages lists; a small page makes the gateway follow ``has_more`` / ``starting_after``.
    page_size: int = 2

    def _respond(self, req: RecordedRequest):
        response = super()._respond(req)
        if response.status_code != 404 or b"Unrecognized request URL" not in response.get_data():
            return response
        if (req.method, req.path) == ("GET", "/v1/balance_transactions"):
            payout = req.query.get("payout")
            if payout not in self.payouts:
                return _json(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                             "message": f"No such payout: '{payout}'", "param": "payout"}})
            expand = "data.source" in req.query.values()
            items = [dict(b, source=b["source"] if expand or not isinstance(b["source"], dict)
                          else b["source"]["id"]) for b in self.payouts[payout]]
            return _json(200, self._page(items, req, f"/v1/balance_transactions"))
        if (req.method, req.path) == ("GET", "/v1/refunds"):
            items = self.refunds.get(req.query.get("payment_intent"), [])
            return _json(200, self._page(items, req, "/v1/refunds"))
        return response

    def _page(self, items: list[dict], req: RecordedRequest, url: str) -> dict:
        start = 0
        if req.query.get("starting_after"):
            start = [item["id"] for item in items].index(req.query["starting_after"]) + 1
        size = min(int(req.query.get("limit", 10)), self.page_size)
        return {"object": "list", "url": url, "data": items[start:start + size],
                "has_more": start + size < len(items)}


@pytest.fixture
def fake_balance(app, monkeypatch):
    with serving(FakeStripeBalance(), monkeypatch) as fake:
        monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway(SECRET_KEY, fake.url))
        yield fake


def gift(client, amount: int, currency: str = "EUR") -> Donation:
    attempt = make_attempt(amount=amount, currency=currency)
    db.session.commit()
    session = checkout_session(attempt)
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    return db.session.scalars(select(Donation).where(Donation.stripe_checkout_session_id == session["id"])).one()


def balance(txn: str, kind: str, amount: int, fee: int, source: dict, *, currency: str = "eur",
            category: str | None = None, rate: float | None = None, created: int = T0) -> dict:
    return {"id": txn, "object": "balance_transaction", "type": kind, "reporting_category": category or kind,
            "amount": amount, "fee": fee, "net": amount - fee, "currency": currency, "exchange_rate": rate,
            "created": created, "available_on": created + 2 * 86400, "status": "available", "source": source}


def charge_of(donation: Donation, charge_id: str) -> dict:
    return {"id": charge_id, "object": "charge", "amount": donation.amount, "currency": donation.currency.lower(),
            "payment_intent": donation.stripe_payment_intent_id}


def payout_object(payout_id: str, amount: int, *, status: str = "paid", currency: str = "eur",
                  failure_txn: str | None = None) -> dict:
    return {"id": payout_id, "object": "payout", "amount": amount, "currency": currency, "status": status,
            "arrival_date": T0 + 3 * 86400, "created": T0 + 86400, "automatic": True, "method": "standard",
            "balance_transaction": f"txn_{payout_id}", "failure_balance_transaction": failure_txn,
            "failure_code": "account_closed" if failure_txn else None,
            "failure_message": "The bank account has been closed." if failure_txn else None,
            "livemode": False}


@pytest.fixture
def books(app_ctx, client, fake_balance):
    """Stripe's example month: a €50 gift refunded €20, a $30 gift settled in euros, and a €25 gift
    disputed with Stripe's €15 dispute fee; all paid out in po_1, whose bank amount is their sum."""
    a, b, c = gift(client, 5000), gift(client, 3000, "USD"), gift(client, 2500)
    charge_a, charge_c = charge_of(a, "ch_a"), charge_of(c, "ch_c")
    refund = {"id": "re_a", "object": "refund", "amount": 2000, "currency": "eur", "charge": "ch_a",
              "payment_intent": a.stripe_payment_intent_id, "status": "succeeded", "created": T0 + 600}
    dispute = {"id": "dp_c", "object": "dispute", "amount": 2500, "currency": "eur", "charge": "ch_c",
               "payment_intent": c.stripe_payment_intent_id, "reason": "fraudulent", "status": "needs_response",
               "created": T0 + 900}
    lines = {
        "a": balance("txn_a", "charge", 5000, 100, charge_a),
        "b": balance("txn_b", "charge", 2750, 110, charge_of(b, "ch_b"), rate=0.916667),
        "c": balance("txn_c", "charge", 2500, 63, charge_c),
        "refund": balance("txn_re_a", "refund", -2000, 0, refund, created=T0 + 600),
        "dispute": balance("txn_dp_c", "adjustment", -2500, 1500, dispute, category="dispute", created=T0 + 900),
    }
    dispute["balance_transactions"] = [dict(lines["dispute"], source="dp_c")]  # as Stripe embeds it
    bank = 4900 + 2640 + 2437 - 2000 - 4000
    payout = payout_object("po_1", bank)
    lines["payout"] = balance("txn_po_1", "payout", -bank, 0, payout, created=T0 + 86400)
    fake_balance.payouts["po_1"] = list(lines.values())
    fake_balance.refunds[a.stripe_payment_intent_id] = [dict(refund, balance_transaction=lines["refund"])]

    charge_a.update(amount_refunded=2000, refunded=False)
    assert post_event(client, event("charge.refunded", charge_a)).status_code == 200
    assert post_event(client, event("charge.dispute.created", dispute)).status_code == 200
    return {"a": a, "b": b, "c": c, "bank": bank, "payout": payout, "lines": lines, "fake": fake_balance}


def payout_row(payout_id: str = "po_1") -> Payout:
    return db.session.scalars(select(Payout).where(Payout.stripe_payout_id == payout_id)).one()


def line_count() -> int:
    return db.session.scalar(select(func.count()).select_from(LedgerLine))


def test_each_payout_s_lines_sum_exactly_to_the_bank_amount(books, client):
    assert post_event(client, event("payout.paid", books["payout"])).status_code == 200

    assert reconcile_payouts() == {"reconciled": 1, "mismatched": 0, "failed": 0}

    payout = payout_row()
    assert (payout.amount, payout.lines_total, payout.difference, payout.lines_count) == (
        books["bank"], books["bank"], 0, 6)
    assert payout.arrival_date == date(2026, 10, 29)
    theirs = db.session.execute(select(LedgerLine.kind, LedgerLine.amount, LedgerLine.donation_id)
                                .where(LedgerLine.payout_id == payout.id).order_by(LedgerLine.id)).all()
    a, b, c = books["a"].id, books["b"].id, books["c"].id
    assert sorted(theirs, key=str) == sorted([
        (LineKind.REFUND, -2000, a), (LineKind.DISPUTE, -2500, c), (LineKind.DISPUTE_FEE, -1500, c),
        (LineKind.GIFT, 5000, a), (LineKind.FEE, -100, a), (LineKind.GIFT, 2750, b), (LineKind.FEE, -110, b),
        (LineKind.GIFT, 2500, c), (LineKind.FEE, -63, c), (LineKind.PAYOUT, -books["bank"], None),
    ], key=str)
    # Every line is in this payout: none is left without one.
    assert db.session.scalar(select(func.count()).where(LedgerLine.payout_id.is_(None))) == 0


def test_a_gift_settled_in_another_currency_keeps_its_fee_net_and_rate(books, client):
    post_event(client, event("payout.paid", books["payout"]))
    reconcile_payouts()

    b = db.session.get(Donation, books["b"].id)
    assert (b.amount, b.currency, b.fee, b.net, b.settlement_currency, b.exchange_rate) == (
        3000, "USD", 110, 2640, "EUR", "0.916667")


def test_the_gateway_reads_every_page_with_sources_expanded(books, client):
    post_event(client, event("payout.paid", books["payout"]))
    reconcile_payouts()

    calls = books["fake"].calls("GET", "/v1/balance_transactions")
    assert len(calls) == 3  # six transactions, two to a page
    assert all(call.query["payout"] == "po_1" and call.query["expand[0]"] == "data.source" for call in calls)
    assert [call.query.get("starting_after") for call in calls] == [None, "txn_b", "txn_re_a"]


def test_a_mismatch_is_kept_and_shown_not_hidden(books, client, caplog):
    books["payout"]["amount"] = books["bank"] + 23  # the bank got 23 cents the lines do not explain
    post_event(client, event("payout.paid", books["payout"]))

    assert reconcile_payouts() == {"reconciled": 0, "mismatched": 1, "failed": 0}

    payout = payout_row()
    assert (payout.lines_total, payout.difference) == (books["bank"], -23)
    assert "payout po_1: lines add up to" in caplog.text


def test_repeated_events_and_runs_book_every_line_once(books, client):
    for _ in range(3):
        post_event(client, event("payout.paid", books["payout"]))
        reconcile_payouts()
        payout_row().reconciled_at = None  # as if asked to reconcile again
        db.session.commit()
    reconcile_payouts()
    settle_books()

    # 3 gifts × (amount + fee) + refund + dispute + dispute fee + payout
    assert line_count() == 10
    assert db.session.scalar(select(func.count()).select_from(Payout)) == 1
    assert payout_row().difference == 0


def test_dispute_lines_come_from_the_dispute_event_before_any_payout(books):
    dispute = db.session.scalars(select(Dispute)).one()
    rows = db.session.execute(select(LedgerLine.kind, LedgerLine.amount).where(LedgerLine.dispute_id == dispute.id)
                              .order_by(LedgerLine.kind)).all()
    assert rows == [(LineKind.DISPUTE, -2500), (LineKind.DISPUTE_FEE, -1500)]


def test_the_job_books_fees_and_refunds_before_the_payout(books, client):
    fake = books["fake"]
    intents = {d.stripe_payment_intent_id: key for key, d in (("a", books["a"]), ("b", books["b"]),
                                                               ("c", books["c"]))}
    fake.payment_intents = {pi: {"id": pi, "object": "payment_intent", "status": "succeeded",
                                 "latest_charge": {**books["lines"][key]["source"],
                                                   "balance_transaction": books["lines"][key]}}
                            for pi, key in intents.items()}
    original = fake._respond

    def respond(req):
        if req.method == "GET" and req.path.startswith("/v1/payment_intents/"):
            return _json(200, fake.payment_intents[req.path.rsplit("/", 1)[1]])
        return original(req)

    fake._respond = respond

    counts = settle_books()

    assert counts["filled"] == 3 and counts["refunds"] == 1
    assert db.session.scalar(select(func.sum(LedgerLine.amount)).where(LedgerLine.kind == LineKind.REFUND)) == -2000
    assert db.session.scalar(select(func.count()).where(LedgerLine.payout_id.is_not(None))) == 0
    settle_books()
    assert line_count() == 9  # nothing twice; the payout line comes with the payout


def test_stripe_unreachable_leaves_the_payout_for_the_next_run(books, client):
    post_event(client, event("payout.paid", books["payout"]))
    books["fake"].fail_next(500)

    assert reconcile_payouts() == {"reconciled": 0, "mismatched": 0, "failed": 1}
    assert payout_row().reconciled_at is None
    assert db.session.scalar(select(func.count()).where(LedgerLine.payout_id.is_not(None))) == 0

    assert reconcile_payouts() == {"reconciled": 1, "mismatched": 0, "failed": 0}


def test_a_failed_payout_returns_its_money_and_the_next_payout_carries_it(books, client):
    failed = payout_object("po_1", books["bank"], status="failed", failure_txn="txn_po_1_failure")
    post_event(client, event("payout.paid", books["payout"], created=T0 + 86400))
    post_event(client, event("payout.failed", failed, created=T0 + 2 * 86400))
    reconcile_payouts()

    assert payout_row().status == "failed"
    returned = db.session.scalars(select(LedgerLine).where(LedgerLine.key == "txn_po_1_failure:amount")).one()
    assert (returned.kind, returned.amount, returned.payout_id) == (LineKind.PAYOUT, books["bank"], None)

    # Stripe pays the money out again; that payout lists the returned funds.
    again = payout_object("po_2", books["bank"])
    books["fake"].payouts["po_2"] = [
        balance("txn_po_1_failure", "payout_failure", books["bank"], 0, failed, created=T0 + 2 * 86400),
        balance("txn_po_2", "payout", -books["bank"], 0, again, created=T0 + 3 * 86400)]
    post_event(client, event("payout.paid", again))
    reconcile_payouts()

    assert payout_row("po_2").difference == 0
    assert db.session.get(LedgerLine, returned.id).payout_id == payout_row("po_2").id


def test_an_older_payout_event_does_not_undo_a_newer_one(books, client):
    failed = payout_object("po_1", books["bank"], status="failed", failure_txn="txn_f")
    post_event(client, event("payout.failed", failed, created=T0 + 2 * 86400))
    post_event(client, event("payout.paid", books["payout"], created=T0 + 86400))

    assert payout_row().status == "failed"


def test_charge_updated_with_its_balance_transaction_books_the_fee(app_ctx, client):
    donation = gift(client, 2500)
    charge = charge_of(donation, "ch_x")
    charge["balance_transaction"] = balance("txn_x", "charge", 2500, 63, dict(charge))

    response = post_event(client, event("charge.updated", charge))

    assert response.get_json()["outcome"] == f"donation {donation.id}: fee 63 EUR booked"
    db.session.refresh(donation)
    assert (donation.fee, donation.net) == (63, 2437)
    assert line_count() == 2


def test_charge_updated_with_only_an_id_leaves_the_fee_to_the_job(app_ctx, client):
    donation = gift(client, 2500)
    charge = dict(charge_of(donation, "ch_x"), balance_transaction="txn_x")

    response = post_event(client, event("charge.updated", charge))

    assert response.get_json()["outcome"] == f"donation {donation.id}: fee left to the fee job"
    assert line_count() == 0


def test_a_late_line_for_a_closed_period_lands_on_the_first_open_day_with_a_note(books, client):
    close_books(date(2026, 10, 31), "accountant@example.org")  # October is filed
    late = balance("txn_late", "adjustment", -500, 0, {"id": "adj_1", "object": "other"},
                   category="other_adjustment", created=T0 + 86400)  # 27 October
    books["fake"].payouts["po_1"].insert(0, late)
    books["payout"]["amount"] -= 500
    post_event(client, event("payout.paid", books["payout"]))
    reconcile_payouts()

    line = db.session.scalars(select(LedgerLine).where(LedgerLine.stripe_balance_transaction_id == "txn_late")).one()
    assert (line.kind, line.booked_on) == (LineKind.OTHER, date(2026, 11, 1))
    assert line.note == "occurred 2026-10-27, in the period closed through 2026-10-31"
    assert line.occurred_at == datetime.fromtimestamp(T0 + 86400, timezone.utc)
    assert payout_row().difference == 0


def test_books_close_only_forward_and_only_past_days(app_ctx):
    from donations.ledger.payouts import BooksError

    close_books(date(2026, 9, 30), "a@example.org")
    with pytest.raises(BooksError, match="already closed through 2026-09-30"):
        close_books(date(2026, 8, 31), "a@example.org")
    with pytest.raises(BooksError, match="Only days that have ended"):
        close_books(datetime.now(timezone.utc).date(), "a@example.org")




def test_sandbox_payout_reconciles_gifts_fees_and_refunds(app_ctx, client):
    from donations.payments import sandbox_gateway
    from tests.functional.test_fees import paid_gift

    first, second = paid_gift(client), paid_gift(client)
    gateway = client.application.extensions["payment_gateway"]
    gateway.refund(first.stripe_payment_intent_id, amount=1000, idempotency_key="refund-1")

    [paid] = sandbox_gateway.payout()
    settle_books()

    payout = payout_row(paid["id"])
    # two €25.00 gifts less 2 × €0.63 fees, less the €10.00 refund
    assert (payout.amount, payout.lines_total, payout.difference) == (2 * 2437 - 1000, 2 * 2437 - 1000, 0)
    assert db.session.scalar(select(func.count()).where(LedgerLine.payout_id.is_(None))) == 0
    assert sandbox_gateway.payout() == []  # nothing left to pay out


def test_the_demo_s_weekly_payouts_reconcile(app_ctx):
    from donations import demo

    assert demo.seed(supporters=30) > 0

    payouts = db.session.scalars(select(Payout)).all()
    assert payouts and all(p.lines_total == p.amount and p.difference == 0 for p in payouts)
    for p in payouts:
        total = db.session.scalar(select(func.sum(LedgerLine.amount)).where(
            LedgerLine.payout_id == p.id, LedgerLine.kind != LineKind.PAYOUT))
        assert total == p.amount
