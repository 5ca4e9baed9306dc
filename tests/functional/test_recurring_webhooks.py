"""Monthly and yearly gifts through POST /stripe/webhook: one recurring gift per subscription, one donation
per paid invoice, dunning once per invoice and attempt, and a final state that does not depend on the order
or repetition in which Stripe delivers the events."""
from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import func, select

from donations.checkout.models import AttemptStatus, CheckoutAttempt
from donations.extensions import db
from donations.ledger.models import (
    Donation,
    DonationStatus,
    Frequency,
    RecurringDonation,
    RecurringStatus,
    StripeEvent,
    Supporter,
)
from donations.mail.models import OutboxEmail
from donations.payments.sandbox_gateway import add_interval
from tests.factories import event, post_event
from tests.recurring_payloads import (
    DAY,
    MONTHS,
    T0,
    Gift,
    at,
    invoice,
    make_recurring_attempt,
    new_id,
    subscription,
    subscription_checkout_session,
)


def new_gift(frequency: Frequency = Frequency.MONTHLY, **kwargs) -> Gift:
    attempt = make_recurring_attempt(frequency, **{"amount": 1000, **kwargs})
    db.session.commit()
    return Gift(attempt, interval=frequency.interval)


def deliver(client, event_type: str, obj: dict, created: int, event_id: str | None = None) -> str:
    """POST one signed event; it must be acknowledged. Returns what processing did."""
    response = post_event(client, event(event_type, obj, created=created, event_id=event_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["outcome"]


def checkout_completed(client, gift: Gift, created: int = T0 + 2, **overrides) -> str:
    return deliver(client, "checkout.session.completed", gift.checkout(created=created, **overrides), created)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def recurring_of(gift: Gift) -> RecurringDonation:
    db.session.expire_all()  # the webhook wrote through its own session
    return db.session.scalars(
        select(RecurringDonation).where(RecurringDonation.stripe_subscription_id == gift.id)).one()


def donations_of(gift: Gift) -> list[Donation]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(Donation).join(RecurringDonation, Donation.recurring_donation_id == RecurringDonation.id)
        .where(RecurringDonation.stripe_subscription_id == gift.id).order_by(Donation.id)))


def emails(template: str) -> list[OutboxEmail]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)
                                   .order_by(OutboxEmail.id)))


def terms(recurring: RecurringDonation) -> dict:
    return {
        "status": recurring.status,
        "amount": recurring.amount,
        "currency": recurring.currency,
        "frequency": recurring.frequency,
        "cancel_at_period_end": recurring.cancel_at_period_end,
        "paused_until": recurring.paused_until,
        "current_period_end": recurring.current_period_end,
    }


# -- checkout.session.completed in subscription mode ------------------------------------------------

@pytest.mark.parametrize("frequency, amount, currency", [
    (Frequency.MONTHLY, 1000, "EUR"),
    (Frequency.YEARLY, 12000, "USD"),
])
def test_subscription_checkout_creates_one_active_recurring_gift_and_no_donation(app_ctx, client, frequency,
                                                                                  amount, currency):
    gift = new_gift(frequency, amount=amount, currency=currency, email="Ada@Example.com")

    outcome = checkout_completed(client, gift)

    recurring = recurring_of(gift)
    assert outcome == f"recurring donation {recurring.id} active"
    assert (recurring.amount, recurring.currency, recurring.frequency) == (amount, currency, frequency)
    assert recurring.status is RecurringStatus.ACTIVE
    assert recurring.status_at == at(T0 + 2)
    assert recurring.stripe_subscription_id == gift.id
    assert recurring.stripe_customer_id == gift.customer
    assert recurring.supporter.email == "ada@example.com"
    assert recurring.supporter.stripe_customer_id == gift.customer
    assert recurring.attempt_id == gift.attempt.id
    assert recurring.article_url == "https://publisher.example/news/1"
    assert recurring.campaign_id == gift.attempt.campaign_id
    assert db.session.get(CheckoutAttempt, gift.attempt.id).status is AttemptStatus.COMPLETED
    # Its payments come from invoice.paid, one donation each.
    assert (count(RecurringDonation), count(Donation), count(OutboxEmail)) == (1, 0, 0)


def test_unpaid_subscription_checkout_leaves_the_gift_incomplete(app_ctx, client):
    gift = new_gift()

    checkout_completed(client, gift, payment_status="unpaid")

    assert recurring_of(gift).status is RecurringStatus.INCOMPLETE
    assert count(Donation) == 0


def test_repeated_subscription_checkout_events_create_one_recurring_gift(app_ctx, client):
    gift = new_gift()
    evt = event("checkout.session.completed", gift.checkout(created=T0 + 2), created=T0 + 2)

    outcomes = [post_event(client, evt).get_json()["outcome"] for _ in range(2)]
    checkout_completed(client, gift)  # the same session in an event of its own

    assert outcomes[1] == "duplicate"
    assert (count(RecurringDonation), count(Donation)) == (1, 0)


# -- invoice.paid ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("billing_reason, created, period", [
    ("subscription_create", T0 + 1, (T0, MONTHS[1])),
    ("subscription_cycle", MONTHS[1], (MONTHS[1], MONTHS[2])),
])
def test_paid_invoice_books_one_donation_of_the_recurring_gift_with_its_receipt(app_ctx, client, billing_reason,
                                                                                created, period):
    gift = new_gift(email="ada@example.com")
    checkout_completed(client, gift)
    paid = gift.invoice(billing_reason=billing_reason, created=created, period_start=period[0],
                        period_end=period[1])

    outcome = deliver(client, "invoice.paid", paid, created)

    [donation] = donations_of(gift)
    recurring = recurring_of(gift)
    assert outcome == f"donation {donation.id} succeeded ({billing_reason})"
    assert donation.recurring_donation_id == recurring.id
    assert (donation.amount, donation.currency, donation.frequency) == (1000, "EUR", Frequency.MONTHLY)
    assert donation.status is DonationStatus.SUCCEEDED
    assert (donation.stripe_invoice_id, donation.stripe_subscription_id) == (paid["id"], gift.id)
    assert donation.stripe_payment_intent_id == paid["payments"]["data"][0]["payment"]["payment_intent"]
    assert donation.supporter_id == recurring.supporter_id
    # The first invoice is the checkout's own payment (a conversion of the ask); a renewal converts nobody new.
    assert donation.attempt_id == (recurring.attempt_id if billing_reason == "subscription_create" else None)
    assert donation.paid_at == at(created)
    assert donation.receipt_number.startswith(f"{at(created).year}-")
    assert recurring.current_period_end == at(period[1])
    [receipt] = emails("receipt")
    assert receipt.dedupe_key == f"receipt:{donation.id}"
    assert receipt.to_address == "ada@example.com"
    assert "€10.00" in receipt.body_text and donation.receipt_number in receipt.body_text


def test_each_paid_invoice_is_its_own_donation_with_its_own_receipt(app_ctx, client):
    gift = new_gift()
    checkout_completed(client, gift)
    first = gift.invoice()
    second = gift.invoice(billing_reason="subscription_cycle", created=MONTHS[1], period_start=MONTHS[1],
                          period_end=MONTHS[2])

    deliver(client, "invoice.paid", first, T0 + 1)
    deliver(client, "invoice.paid", second, MONTHS[1])

    donations = donations_of(gift)
    assert [d.stripe_invoice_id for d in donations] == [first["id"], second["id"]]
    assert len({d.receipt_number for d in donations}) == 2
    assert sorted(e.dedupe_key for e in emails("receipt")) == sorted(f"receipt:{d.id}" for d in donations)
    assert recurring_of(gift).current_period_end == at(MONTHS[2])


@pytest.mark.parametrize("again", ["same event id", "new event id for the same invoice"])
def test_paid_invoice_delivered_again_books_nothing_more(app_ctx, client, again):
    gift = new_gift()
    checkout_completed(client, gift)
    paid = gift.invoice()
    first_id = new_id("evt")
    deliver(client, "invoice.paid", paid, T0 + 1, event_id=first_id)

    outcome = deliver(client, "invoice.paid", paid, T0 + 1,
                      event_id=first_id if again == "same event id" else None)

    [donation] = donations_of(gift)
    assert outcome == ("duplicate" if again == "same event id" else f"donation {donation.id} already booked")
    assert len(emails("receipt")) == 1
    assert count(RecurringDonation) == 1


def test_paid_invoice_before_checkout_completed_creates_the_recurring_gift_from_its_metadata(app_ctx, client):
    gift = new_gift(amount=1500, email="ada@example.com")

    deliver(client, "invoice.paid", gift.invoice(amount=1500), T0 + 1)

    recurring = recurring_of(gift)
    assert (recurring.amount, recurring.currency, recurring.frequency) == (1500, "EUR", Frequency.MONTHLY)
    assert recurring.status is RecurringStatus.ACTIVE
    assert recurring.supporter.email == "ada@example.com"
    assert recurring.attempt_id == gift.attempt.id
    assert recurring.stripe_customer_id == gift.customer
    [donation] = donations_of(gift)
    assert donation.recurring_donation_id == recurring.id

    checkout_completed(client, gift)  # arrives late: finds the gift, changes nothing

    assert recurring_of(gift).status is RecurringStatus.ACTIVE
    assert (count(RecurringDonation), count(Donation), len(emails("receipt"))) == (1, 1, 1)


def test_invoice_with_nothing_paid_books_no_donation(app_ctx, client):
    gift = new_gift()
    checkout_completed(client, gift)
    free = gift.invoice(amount_paid=0)

    outcome = deliver(client, "invoice.paid", free, T0 + 1)

    assert outcome.endswith(f"nothing paid on {free['id']}")
    assert (count(Donation), len(emails("receipt"))) == (0, 0)


# -- invoice.payment_failed: dunning ----------------------------------------------------------------

def failed(gift: Gift, invoice_id: str, attempt_count: int, created: int) -> dict:
    return gift.invoice(invoice_id=invoice_id, paid=False, billing_reason="subscription_cycle",
                        attempt_count=attempt_count, created=created, period_start=MONTHS[1],
                        period_end=MONTHS[2])


def test_failed_renewal_makes_the_gift_past_due_and_sends_one_dunning_email(app_ctx, client):
    gift = new_gift(email="ada@example.com")
    checkout_completed(client, gift)
    invoice_id = new_id("in")

    deliver(client, "invoice.payment_failed", failed(gift, invoice_id, 1, MONTHS[1]), MONTHS[1])

    assert recurring_of(gift).status is RecurringStatus.PAST_DUE
    [dunning] = emails("payment_failed")
    assert dunning.dedupe_key == f"payment_failed:{invoice_id}:1"
    assert dunning.to_address == "ada@example.com"
    assert "€10.00" in dunning.body_text
    assert count(Donation) == 0


# Each step: (event, attempt_count or None for the recovery, delivery) -> (status, dunning emails so far).
DUNNING_STEPS = [
    ("invoice.payment_failed", 1, "new", RecurringStatus.PAST_DUE, 1),
    ("invoice.payment_failed", 1, "same event id", RecurringStatus.PAST_DUE, 1),
    ("invoice.payment_failed", 1, "new", RecurringStatus.PAST_DUE, 1),
    ("invoice.payment_failed", 2, "new", RecurringStatus.PAST_DUE, 2),
    ("invoice.payment_failed", 2, "new", RecurringStatus.PAST_DUE, 2),
    ("invoice.paid", 3, "new", RecurringStatus.ACTIVE, 2),
]


def test_dunning_sends_one_email_per_invoice_and_attempt_and_recovery_makes_the_gift_active(app_ctx, client):
    gift = new_gift()
    checkout_completed(client, gift)
    invoice_id = new_id("in")
    last_event_id = None

    for step, (event_type, attempt_count, delivery, status, dunning) in enumerate(DUNNING_STEPS):
        created = MONTHS[1] + step * DAY
        obj = (failed(gift, invoice_id, attempt_count, created) if event_type == "invoice.payment_failed"
               else gift.invoice(invoice_id=invoice_id, billing_reason="subscription_cycle",
                                 attempt_count=attempt_count, created=created, period_start=MONTHS[1],
                                 period_end=MONTHS[2]))
        event_id = last_event_id if delivery == "same event id" else new_id("evt")
        deliver(client, event_type, obj, created, event_id=event_id)
        last_event_id = event_id

        assert recurring_of(gift).status is status, f"step {step}"
        assert len(emails("payment_failed")) == dunning, f"step {step}"

    assert sorted(e.dedupe_key for e in emails("payment_failed")) == [
        f"payment_failed:{invoice_id}:1", f"payment_failed:{invoice_id}:2"]
    [donation] = donations_of(gift)
    assert donation.stripe_invoice_id == invoice_id
    assert len(emails("receipt")) == 1


def test_each_failed_invoice_gets_its_own_dunning_email(app_ctx, client):
    gift = new_gift()
    checkout_completed(client, gift)
    first, second = new_id("in"), new_id("in")

    deliver(client, "invoice.payment_failed", failed(gift, first, 1, MONTHS[1]), MONTHS[1])
    deliver(client, "invoice.payment_failed", failed(gift, second, 1, MONTHS[2]), MONTHS[2])

    assert sorted(e.dedupe_key for e in emails("payment_failed")) == sorted(
        [f"payment_failed:{first}:1", f"payment_failed:{second}:1"])


def test_failure_delivered_after_its_recovery_leaves_the_gift_active_without_dunning(app_ctx, client):
    gift = new_gift()
    checkout_completed(client, gift)
    invoice_id = new_id("in")
    recovery = gift.invoice(invoice_id=invoice_id, billing_reason="subscription_cycle", attempt_count=2,
                            created=MONTHS[1] + 3 * DAY, period_start=MONTHS[1], period_end=MONTHS[2])

    deliver(client, "invoice.paid", recovery, MONTHS[1] + 3 * DAY)
    deliver(client, "invoice.payment_failed", failed(gift, invoice_id, 1, MONTHS[1]), MONTHS[1])

    assert recurring_of(gift).status is RecurringStatus.ACTIVE
    assert emails("payment_failed") == []
    assert len(donations_of(gift)) == 1


# -- customer.subscription.updated ------------------------------------------------------------------

PAUSE_UNTIL = MONTHS[3]

#: What an update carries -> what the gift shows afterwards (besides what stays as it was).
UPDATES = {
    "amount": ({"amount": 2500}, {"amount": 2500}),
    "quantity": ({"amount": 500, "quantity": 3}, {"amount": 1500}),
    "interval": ({"interval": "year", "period_end": add_interval(T0, "year")},
                 {"frequency": Frequency.YEARLY, "current_period_end": at(add_interval(T0, "year"))}),
    "currency": ({"amount": 900, "currency": "gbp"}, {"amount": 900, "currency": "GBP"}),
    "status past_due": ({"status": "past_due"}, {"status": RecurringStatus.PAST_DUE}),
    "status unpaid": ({"status": "unpaid"}, {"status": RecurringStatus.PAST_DUE}),
    "cancel at period end": ({"cancel_at_period_end": True}, {"cancel_at_period_end": True}),
    "pause": ({"pause_resumes_at": PAUSE_UNTIL},
              {"status": RecurringStatus.PAUSED, "paused_until": at(PAUSE_UNTIL)}),
    "next period": ({"period_start": MONTHS[1], "period_end": MONTHS[2]},
                    {"current_period_end": at(MONTHS[2])}),
}

BEFORE = {
    "status": RecurringStatus.ACTIVE,
    "amount": 1000,
    "currency": "EUR",
    "frequency": Frequency.MONTHLY,
    "cancel_at_period_end": False,
    "paused_until": None,
    "current_period_end": at(MONTHS[1]),
}


def active_gift(client) -> Gift:
    """A monthly €10 gift, active since its checkout and first invoice."""
    gift = new_gift()
    checkout_completed(client, gift)
    deliver(client, "invoice.paid", gift.invoice(), T0 + 1)
    return gift


@pytest.mark.parametrize("change", UPDATES)
def test_subscription_update_is_applied_to_the_gift(app_ctx, client, change):
    carried, shown = UPDATES[change]
    gift = active_gift(client)
    assert terms(recurring_of(gift)) == BEFORE

    deliver(client, "customer.subscription.updated", gift.subscription(**carried), T0 + DAY)

    assert terms(recurring_of(gift)) == {**BEFORE, **shown}
    assert len(donations_of(gift)) == 1  # an update books nothing


def test_resumed_subscription_is_active_again_without_pause_end(app_ctx, client):
    gift = active_gift(client)
    deliver(client, "customer.subscription.updated", gift.subscription(pause_resumes_at=PAUSE_UNTIL), T0 + DAY)

    deliver(client, "customer.subscription.updated", gift.subscription(), T0 + 2 * DAY)

    assert terms(recurring_of(gift)) == BEFORE


@pytest.mark.parametrize("change", UPDATES)
def test_older_subscription_update_delivered_after_a_newer_one_does_not_overwrite_it(app_ctx, client, change):
    carried, shown = UPDATES[change]
    gift = active_gift(client)
    newer = gift.subscription(**carried)
    older = gift.subscription()

    deliver(client, "customer.subscription.updated", newer, T0 + 2 * DAY)
    deliver(client, "customer.subscription.updated", older, T0 + DAY)

    assert terms(recurring_of(gift)) == {**BEFORE, **shown}


def test_older_status_delivered_after_a_newer_paid_invoice_does_not_overwrite_it(app_ctx, client):
    gift = active_gift(client)
    deliver(client, "invoice.paid", gift.invoice(billing_reason="subscription_cycle", created=MONTHS[1],
                                                 period_start=MONTHS[1], period_end=MONTHS[2]), MONTHS[1])

    # Stripe's snapshot from before the renewal, when the gift was briefly past due, arrives late.
    deliver(client, "customer.subscription.updated", gift.subscription(status="past_due", amount=1200),
            MONTHS[1] - DAY)

    recurring = recurring_of(gift)
    assert recurring.status is RecurringStatus.ACTIVE
    assert recurring.amount == 1200  # terms are not a status: the newest subscription object still counts
    assert recurring.current_period_end == at(MONTHS[2])


def test_subscription_created_still_incomplete_in_the_same_second_as_the_first_payment_is_accepted(app_ctx, client,
                                                                                                   caplog):
    # Stripe may create the subscription incomplete and activate it when the first invoice is paid, all within
    # one second (event times are whole seconds); the snapshot taken before the payment can arrive last.
    gift = new_gift()
    deliver(client, "invoice.paid", gift.invoice(created=T0), T0)
    checkout_completed(client, gift, created=T0)

    outcome = deliver(client, "customer.subscription.created", gift.subscription(status="incomplete"), T0)

    recurring = recurring_of(gift)
    assert recurring.status is RecurringStatus.ACTIVE
    assert outcome == f"recurring donation {recurring.id} active"
    assert recurring.terms_at == at(T0)  # its terms were applied, not refused with the rest of the event
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_monthly_renewal_delivered_after_a_switch_to_yearly_is_booked_as_monthly(app_ctx, client):
    gift = active_gift(client)
    yearly_from = MONTHS[1] + DAY
    deliver(client, "customer.subscription.updated",
            gift.subscription(interval="year", period_start=MONTHS[1], period_end=MONTHS[2]), yearly_from)
    renewal = gift.invoice(billing_reason="subscription_cycle", created=MONTHS[1], period_start=MONTHS[1],
                           period_end=MONTHS[2])

    deliver(client, "invoice.paid", renewal, MONTHS[1])  # paid before the switch, delivered after it

    assert recurring_of(gift).frequency is Frequency.YEARLY
    assert [d.frequency for d in donations_of(gift)] == [Frequency.MONTHLY, Frequency.MONTHLY]


# -- customer.subscription.deleted ------------------------------------------------------------------

def deleted(gift: Gift, canceled_at: int) -> dict:
    return gift.subscription(status="canceled", canceled_at=canceled_at)


def test_deleted_subscription_cancels_the_gift(app_ctx, client):
    gift = active_gift(client)

    deliver(client, "customer.subscription.deleted", deleted(gift, T0 + 5 * DAY), T0 + 5 * DAY)

    recurring = recurring_of(gift)
    assert recurring.status is RecurringStatus.CANCELED
    assert recurring.canceled_at == at(T0 + 5 * DAY)
    assert not recurring.is_open


LATE = {
    "older subscription.updated (active)": ("customer.subscription.updated", "older"),
    "newer subscription.updated (active)": ("customer.subscription.updated", "newer"),
    "older invoice.paid": ("invoice.paid", "older"),
    "newer invoice.paid": ("invoice.paid", "newer"),
}


@pytest.mark.parametrize("late", LATE)
def test_event_delivered_after_the_deletion_does_not_revive_the_gift(app_ctx, client, late):
    event_type, when = LATE[late]
    gift = new_gift()
    checkout_completed(client, gift)
    canceled = T0 + 10 * DAY
    deliver(client, "customer.subscription.deleted", deleted(gift, canceled), canceled)
    created = canceled - DAY if when == "older" else canceled + DAY
    obj = (gift.subscription(amount=3000) if event_type == "customer.subscription.updated"
           else gift.invoice(created=created))

    deliver(client, event_type, obj, created)

    recurring = recurring_of(gift)
    assert recurring.status is RecurringStatus.CANCELED
    assert recurring.canceled_at == at(canceled)
    if event_type == "invoice.paid":  # the money was taken: it is booked, with its receipt
        [donation] = donations_of(gift)
        assert (donation.stripe_invoice_id, donation.status) == (obj["id"], DonationStatus.SUCCEEDED)
        assert [e.dedupe_key for e in emails("receipt")] == [f"receipt:{donation.id}"]
    elif when == "older":
        assert recurring.amount == 1000  # the deletion's object is newer: its terms stay


def test_failed_invoice_after_the_deletion_sends_no_dunning(app_ctx, client):
    gift = new_gift()
    checkout_completed(client, gift)
    deliver(client, "customer.subscription.deleted", deleted(gift, MONTHS[1]), MONTHS[1])

    deliver(client, "invoice.payment_failed", failed(gift, new_id("in"), 1, MONTHS[1] + DAY), MONTHS[1] + DAY)

    assert recurring_of(gift).status is RecurringStatus.CANCELED
    assert emails("payment_failed") == []


# -- guards: subscriptions that are not ours ---------------------------------------------------------

def _foreign(event_type: str, subscription_id: str, metadata: dict) -> dict:
    """An object about someone else's subscription, in the shape of ``event_type``."""
    match event_type:
        case "checkout.session.completed":
            return subscription_checkout_session(None, subscription_id=subscription_id, customer="cus_other",
                                                 metadata=metadata)
        case "invoice.paid" | "invoice.payment_failed":
            return invoice(None, subscription_id=subscription_id, paid=event_type == "invoice.paid",
                           customer="cus_other", created=T0, period_start=T0, period_end=MONTHS[1],
                           metadata=metadata)
        case _:
            status = "canceled" if event_type.endswith("deleted") else "active"
            return subscription(None, subscription_id=subscription_id, customer="cus_other", status=status,
                                period_start=T0, period_end=MONTHS[1], metadata=metadata)


NOT_OURS = {
    "no metadata": {},
    "unknown attempt id": {"attempt_id": "00000000-0000-0000-0000-000000000000"},
    "unknown subscription id, another integration's metadata": {"order_id": "A-1042"},
}
EVENT_TYPES = ["checkout.session.completed", "invoice.paid", "invoice.payment_failed",
               "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"]


@pytest.mark.parametrize("reason", NOT_OURS)
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_events_about_subscriptions_that_are_not_ours_are_acknowledged_and_write_nothing(app_ctx, client,
                                                                                        event_type, reason):
    gift = active_gift(client)  # ours: it must stay as it is
    before = (terms(recurring_of(gift)), count(Supporter), count(Donation), count(OutboxEmail))
    evt = event(event_type, _foreign(event_type, new_id("sub"), NOT_OURS[reason]), created=T0 + DAY)

    response = post_event(client, evt)

    assert response.status_code == 200
    assert response.get_json()["outcome"].startswith("ignored: not ours")
    assert (terms(recurring_of(gift)), count(Supporter), count(Donation), count(OutboxEmail)) == before
    assert count(RecurringDonation) == 1
    assert db.session.get(StripeEvent, evt["id"]).outcome.startswith("ignored: not ours")


def test_invoice_of_no_subscription_is_not_ours(app_ctx, client):
    gift = active_gift(client)
    one_off = invoice(gift.attempt.id, subscription_id=None, billing_reason="manual", created=T0 + DAY,
                      period_start=T0, period_end=T0)

    outcome = deliver(client, "invoice.paid", one_off, T0 + DAY)

    assert outcome.startswith("ignored: not ours")
    assert count(Donation) == 1  # the first invoice's only


# -- a whole year, in order and shuffled ---------------------------------------------------------------

def year_of_events(gift: Gift) -> tuple[list[dict], dict[str, str]]:
    """One supporter's year, in the order Stripe would send it, and which month each invoice id is.

    €10 a month; the amount becomes €15 from the seventh invoice; the ninth renewal is declined and paid
    three days later; after the twelfth the supporter cancels at period end, and the subscription ends.
    """
    events: list[dict] = []
    months: dict[str, str] = {}

    def add(event_type: str, obj: dict, created: int) -> None:
        events.append(event(event_type, obj, created=created))

    add("customer.subscription.created", gift.subscription(), T0)
    for n in range(1, 13):
        start, end = MONTHS[n - 1], MONTHS[n]
        amount = 1000 if n <= 6 else 1500
        invoice_id = new_id("in")
        months[invoice_id] = f"month {n:02d}"
        created = T0 + 1 if n == 1 else start
        reason = "subscription_create" if n == 1 else "subscription_cycle"
        if n == 9:
            add("invoice.payment_failed", gift.invoice(invoice_id=invoice_id, paid=False, amount=amount,
                                                       billing_reason=reason, created=created,
                                                       period_start=start, period_end=end), created)
            created += 3 * DAY
        add("invoice.paid", gift.invoice(invoice_id=invoice_id, amount=amount, billing_reason=reason,
                                         attempt_count=2 if n == 9 else 1, created=created,
                                         period_start=start, period_end=end), created)
        if n == 1:
            add("checkout.session.completed", gift.checkout(created=T0 + 2), T0 + 2)
        if n == 6:  # the supporter raises the gift, from the next invoice on
            add("customer.subscription.updated", gift.subscription(amount=1500, period_start=start,
                                                                   period_end=end), start + 10 * DAY)
        if n == 12:
            add("customer.subscription.updated", gift.subscription(amount=1500, period_start=start,
                                                                   period_end=end, cancel_at_period_end=True),
                start + 5 * DAY)
            add("customer.subscription.deleted", gift.subscription(amount=1500, period_start=start,
                                                                   period_end=end, cancel_at_period_end=True,
                                                                   status="canceled", canceled_at=end), end)
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)
    return events, months


def final_state(gift: Gift, months: dict[str, str]) -> dict:
    recurring = recurring_of(gift)
    donations = donations_of(gift)
    receipts = db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.template == "receipt", OutboxEmail.dedupe_key.in_([f"receipt:{d.id}" for d in donations])))
    return {
        **terms(recurring),
        "canceled_at": recurring.canceled_at,
        "donations": len(donations),
        "invoices": sorted(months[d.stripe_invoice_id] for d in donations),
        "amounts": sorted((months[d.stripe_invoice_id], d.amount) for d in donations),
        "receipts": receipts,
        "recurring gifts of the attempt": count(RecurringDonation, RecurringDonation.attempt_id == gift.attempt.id),
    }


def play_year(client, seed: int | None) -> dict:
    """A fresh supporter's year, delivered in order (seed None) or shuffled; returns the final state."""
    gift = new_gift(email=f"year-{seed}-{uuid.uuid4().hex[:8]}@example.com")
    events, months = year_of_events(gift)
    if seed is not None:
        random.Random(seed).shuffle(events)
    for evt in events:
        response = post_event(client, evt)
        assert response.status_code == 200, (seed, evt["type"], response.get_data(as_text=True))
    return final_state(gift, months)


def test_a_year_delivered_in_order_ends_canceled_with_twelve_donations(app_ctx, client):
    state = play_year(client, None)

    assert state == {
        "status": RecurringStatus.CANCELED,
        "amount": 1500,
        "currency": "EUR",
        "frequency": Frequency.MONTHLY,
        "cancel_at_period_end": True,
        "paused_until": None,
        "current_period_end": at(MONTHS[12]),
        "canceled_at": at(MONTHS[12]),
        "donations": 12,
        "invoices": [f"month {n:02d}" for n in range(1, 13)],
        "amounts": [(f"month {n:02d}", 1000 if n <= 6 else 1500) for n in range(1, 13)],
        "receipts": 12,
        "recurring gifts of the attempt": 1,
    }
    assert len(emails("payment_failed")) == 1  # in order, the declined renewal is dunned once


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_year_delivered_in_any_order_ends_in_the_same_state(app_ctx, client, seed):
    in_order = play_year(client, None)

    shuffled = play_year(client, seed)

    assert shuffled == in_order
