"""GDPR erasure: by the supporter from their account link and by staff, through Stripe (the fake Stripe
API) and the sandbox; Stripe refusing means 409 and nothing pseudonymised; and a webhook about the
erased customer afterwards brings no personal data back."""
from __future__ import annotations

import html

import pytest
from sqlalchemy import select, update

from donations.accounts.tokens import manage_url
from donations.checkout.operations import FORM_CONSENT_SOURCE
from donations.extensions import db
from donations.ledger.models import (
    ConsentRecord,
    Donation,
    DonationStatus,
    Erasure,
    Frequency,
    RecurringDonation,
    RecurringStatus,
    Supporter,
)
from donations.mail import emails
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.outbox import queue
from donations.payments.stripe_gateway import StripeGateway
from donations.security import privacy
from donations.staff.models import AuditEntry, AuditLogIsAppendOnly, audit_redaction
from tests.factories import checkout_session, event, make_attempt, post_event
from tests.functional.helpers import hidden_value
from tests.functional.test_stripe_subscriptions import SECRET_KEY, fake_billing  # noqa: F401  (fixture)
from tests.recurring_payloads import MONTHS, invoice, make_recurring_attempt, subscription_checkout_session
from tests.staff_helpers import in_app, sandbox_gift, signed_in, webhook_gift
from tests.stripe_fake import _error

EMAIL = "ada.lovelace@example.com"
NAME = "Ada Lovelace"
PUBLIC = "http://donations.test"


def personal_data_left(*needles: str) -> list[str]:
    """Every (table, row) whose text, in any column, still holds one of ``needles``: the whole database."""
    found = []
    lowered = [n.lower() for n in needles]
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            text = " ".join(str(value) for value in row.values()).lower()
            found += [f"{table.name}: {needle}" for needle in lowered if needle in text]
    return found


def account_path(person: Supporter) -> str:
    return manage_url(person.id, person.email).removeprefix(PUBLIC)


@pytest.fixture
def stripe_donor(app, app_ctx, client, fake_billing, monkeypatch):  # noqa: F811
    """A supporter who gave once and monthly through Stripe (the fake), ticked "keep me informed", has a
    receipt and a pending email in the outbox and is named in the audit log."""
    monkeypatch.setitem(app.extensions, "payment_gateway", StripeGateway(SECRET_KEY, fake_billing.url))
    fake_billing.customers["cus_ada"] = {"id": "cus_ada", "object": "customer", "email": EMAIL}
    once = make_attempt(email=EMAIL, name=NAME)
    once.mailing_consent_source = FORM_CONSENT_SOURCE
    monthly = make_recurring_attempt(email=EMAIL, name=NAME)
    db.session.commit()
    subscription = fake_billing.add_subscription(amount=monthly.amount, customer="cus_ada",
                                                 metadata={"attempt_id": monthly.id})
    session = checkout_session(once)
    session["customer_details"] = {"email": EMAIL, "name": NAME, "phone": "+44 20 7946 0000",
                                   "address": {"line1": "12 Analytical Row", "city": "London"}}
    for evt in (event("checkout.session.completed", session),
                event("checkout.session.completed", subscription_checkout_session(
                    monthly, subscription_id=subscription["id"], customer="cus_ada")),
                event("invoice.paid", invoice(monthly.id, subscription_id=subscription["id"], customer="cus_ada",
                                              billing_reason="subscription_create", created=MONTHS[0],
                                              period_start=MONTHS[0], period_end=MONTHS[1], amount=monthly.amount))):
        assert post_event(client, evt).status_code == 200
    person = db.session.scalars(select(Supporter).where(Supporter.email == EMAIL)).one()
    assert person.stripe_customer_id == "cus_ada" and person.mailing_consent_at is not None
    emails.queue_manage_link(person, "nonce1")  # pending: must never go out after the erasure
    db.session.add(AuditEntry(action="receipt.resend", object_type="donation", object_id="1",
                              detail={"to": EMAIL, "name": NAME}))
    db.session.commit()
    return {"supporter": person, "subscription": subscription, "session": session, "monthly": monthly}


def erase_from_account(client, person: Supporter):
    path = account_path(person)
    page = client.get(f"{path}/erase")
    assert page.status_code == 200 and "Erase my data" in page.get_data(as_text=True)
    return client.post(f"{path}/erase", data={"csrf_token": hidden_value(page.get_data(as_text=True), "csrf_token")})


def test_supporter_erases_their_data_through_stripe(app_ctx, client, fake_billing, stripe_donor):  # noqa: F811
    person = stripe_donor["supporter"]
    old_link = account_path(person)
    before = [(d.amount, d.currency, d.receipt_number, d.paid_at) for d in
              db.session.scalars(select(Donation).order_by(Donation.id))]
    assert personal_data_left(EMAIL, NAME)  # the search finds them before

    response = erase_from_account(client, person)

    assert response.status_code == 200 and "Your data is erased" in response.get_data(as_text=True)
    db.session.expire_all()
    # At Stripe: the monthly gift cancelled, then the customer deleted.
    assert [r.method for r in fake_billing.requests if "/v1/subscriptions/" in r.path] == ["DELETE"]
    assert fake_billing.deleted_customers == ["cus_ada"]
    person = db.session.get(Supporter, person.id)
    assert person.email == f"erased-{person.id}@invalid"
    assert (person.name, person.stripe_customer_id, person.mailing_consent_at) == (None, None, None)
    # The money facts stay, on the pseudonymised supporter.
    assert [(d.amount, d.currency, d.receipt_number, d.paid_at) for d in
            db.session.scalars(select(Donation).order_by(Donation.id))] == before
    assert db.session.scalars(select(RecurringDonation)).one().status is RecurringStatus.CANCELED
    # Outbox: nothing pending, nothing readable, nothing addressed to them.
    rows = db.session.scalars(select(OutboxEmail)).all()
    assert rows and all(e.to_address == person.email and e.body_text == e.body_html == "[erased]" for e in rows)
    assert not [e for e in rows if e.status is EmailStatus.PENDING]
    [erasure] = db.session.scalars(select(Erasure)).all()
    assert erasure.requested_by == "supporter" and erasure.email_hash == privacy.email_hash(EMAIL)
    assert erasure.customer_hash == privacy.customer_hash("cus_ada") and EMAIL not in erasure.email_hash
    assert db.session.scalars(select(ConsentRecord.action).order_by(ConsentRecord.id)).all() == ["given", "withdrawn"]
    assert personal_data_left(EMAIL, NAME, "Analytical Row", "7946 0000") == []
    # The old link no longer opens anything.
    assert client.get(old_link).status_code == 400


def test_webhooks_about_the_erased_customer_bring_no_personal_data_back(app_ctx, client, stripe_donor):
    person = stripe_donor["supporter"]
    monthly, subscription = stripe_donor["monthly"], stripe_donor["subscription"]
    assert erase_from_account(client, person).status_code == 200
    outbox_before = db.session.query(OutboxEmail).count()

    renewal = invoice(monthly.id, subscription_id=subscription["id"], customer="cus_ada", created=MONTHS[1],
                      period_start=MONTHS[1], period_end=MONTHS[2], amount=monthly.amount)
    renewal.update(customer_email=EMAIL, customer_name=NAME, customer_phone="+44 20 7946 0000",
                   customer_address={"line1": "12 Analytical Row", "city": "London"})
    late = dict(stripe_donor["session"], id=stripe_donor["session"]["id"])  # Stripe delivers it once more
    for evt in (event("customer.updated", {"id": "cus_ada", "object": "customer", "email": EMAIL, "name": NAME,
                                           "phone": "+44 20 7946 0000", "address": {"line1": "12 Analytical Row"}}),
                event("invoice.paid", renewal),
                event("checkout.session.completed", late),
                # No customer id at all: recognised by the email's keyed hash alone.
                event("charge.succeeded", {"id": "ch_1", "object": "charge", "amount": 500, "currency": "eur",
                                           "billing_details": {"email": EMAIL, "name": NAME}})):
        assert post_event(client, evt).status_code == 200

    db.session.expire_all()
    assert personal_data_left(EMAIL, NAME, "Analytical Row", "7946 0000") == []
    person = db.session.get(Supporter, person.id)
    assert (person.email, person.name, person.stripe_customer_id) == (f"erased-{person.id}@invalid", None, None)
    # The renewal's money still books, to the pseudonymised supporter, and no receipt is queued for it.
    renewal_gift = db.session.scalars(select(Donation).where(Donation.stripe_invoice_id == renewal["id"])).one()
    assert (renewal_gift.supporter_id, renewal_gift.amount, renewal_gift.status) == (
        person.id, monthly.amount, DonationStatus.SUCCEEDED)
    assert db.session.query(OutboxEmail).count() == outbox_before


def erase_refused_by_stripe(client, fake_billing, person):
    """The supporter asks to be erased from their account page; the subscription cancel goes through, deleting
    the customer is refused (an API key without the right)."""
    path = account_path(person)
    page = client.get(f"{path}/erase").get_data(as_text=True)
    original = fake_billing._delete_customer
    fake_billing._delete_customer = lambda customer_id: _error(
        403, {"type": "invalid_request_error", "message": "The provided key does not have access to customers."})
    try:
        return client.post(f"{path}/erase", data={"csrf_token": hidden_value(page, "csrf_token")})
    finally:
        fake_billing._delete_customer = original


def test_stripe_refusing_answers_409_and_erases_nothing(app_ctx, client, fake_billing, stripe_donor):  # noqa: F811
    person = stripe_donor["supporter"]
    response = erase_refused_by_stripe(client, fake_billing, person)

    assert response.status_code == 409
    assert "nothing was erased" in response.get_data(as_text=True)
    db.session.expire_all()
    person = db.session.get(Supporter, person.id)
    assert (person.email, person.name, person.stripe_customer_id) == (EMAIL, NAME, "cus_ada")
    assert db.session.scalars(select(Erasure)).all() == []
    assert db.session.scalars(select(OutboxEmail.to_address).distinct()).all() == [EMAIL]
    assert fake_billing.deleted_customers == []
    # What Stripe did do stays true here: the monthly gift is cancelled.
    assert db.session.scalars(select(RecurringDonation.status)).all() == [RecurringStatus.CANCELED]


def test_the_refusal_is_explained_in_the_supporters_language(app_ctx, client, fake_billing,  # noqa: F811
                                                             stripe_donor):  # noqa: F811
    person = stripe_donor["supporter"]
    person.locale = "de"
    db.session.flush()
    response = erase_refused_by_stripe(client, fake_billing, person)

    assert response.status_code == 409
    assert ('<p class="error" role="alert">Der Zahlungsanbieter ist nicht erreichbar; es wurde nichts gelöscht. '
            'Bitte versuchen Sie es noch einmal.</p>') in html.unescape(response.get_data(as_text=True))


def test_a_customer_stripe_no_longer_has_counts_as_deleted(app_ctx, client, fake_billing, stripe_donor):  # noqa: F811
    fake_billing.customers.clear()  # deleted at Stripe already (in the Dashboard, say): resource_missing

    assert erase_from_account(client, stripe_donor["supporter"]).status_code == 200
    assert personal_data_left(EMAIL, NAME) == []


def test_staff_erase_a_sandbox_supporter_with_a_reason_and_it_is_audited(app, client):
    gift_id = sandbox_gift(app, email=EMAIL, frequency="monthly")
    staff = signed_in(client, "staff")
    with in_app(app):
        supporter_id = db.session.get(Donation, gift_id).supporter_id
    page = staff.get(f"/staff/supporters/{supporter_id}").get_data(as_text=True)
    assert "Cancel their gifts and erase their personal data" in page

    refused = staff.post(f"/staff/supporters/{supporter_id}/erase", {"reason": "  "})
    assert refused.status_code == 400
    with in_app(app):
        assert db.session.get(Supporter, supporter_id).email == EMAIL

    response = staff.post(f"/staff/supporters/{supporter_id}/erase",
                          {"reason": f"Email from {EMAIL} on 2026-11-20"})

    assert response.status_code == 303
    with in_app(app):
        person = db.session.get(Supporter, supporter_id)
        assert person.email == f"erased-{supporter_id}@invalid"
        assert db.session.scalars(select(RecurringDonation.status)).all() == [RecurringStatus.CANCELED]
        [erasure] = db.session.scalars(select(Erasure)).all()
        assert (erasure.requested_by, erasure.staff_user_id, erasure.customer_hash is not None) == ("staff", staff.id, True)
        [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "supporter.erase")).all()
        assert (entry.actor_id, entry.object_id, entry.outcome) == (staff.id, str(supporter_id), "ok")
        assert personal_data_left(EMAIL, "Ada Reader") == []
    # A webhook naming the erased email (the customer id is not kept: recognised by the email's hash).
    assert post_event(client, event("customer.updated", {"id": "cus_sandbox_gone", "object": "customer",
                                                         "email": EMAIL, "name": "Ada Reader"})).status_code == 200
    with in_app(app):
        assert personal_data_left(EMAIL, "Ada Reader") == []


def test_the_outbox_never_queues_mail_to_an_invalid_address(app_ctx):
    queue("manage_link", "erased-7@invalid", {}, dedupe_key="x:1")
    queue("manage_link", "someone@mail.invalid", {}, dedupe_key="x:2")

    assert db.session.scalars(select(OutboxEmail)).all() == []


def test_audit_entries_stay_append_only_outside_the_redaction_path(app_ctx):
    entry = AuditEntry(action="test", detail={"to": EMAIL}, ip_hash="a" * 64)
    db.session.add(entry)
    db.session.commit()

    entry.detail = {"to": "[erased]"}
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.execute(update(AuditEntry).values(detail={}))
    db.session.rollback()
    with audit_redaction():
        entry.action = "rewritten"  # who did what is never redactable
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.flush()
        db.session.rollback()
        with pytest.raises(AuditLogIsAppendOnly):  # nor is anything deleted
            db.session.delete(entry)
            db.session.flush()
        db.session.rollback()
        entry.detail, entry.ip_hash = {"to": "[erased]"}, None
        db.session.flush()
    db.session.commit()
    assert (entry.detail, entry.ip_hash, entry.action) == ({"to": "[erased]"}, None, "test")


def test_erasing_twice_is_refused(app_ctx, stripe_donor):
    person = stripe_donor["supporter"]
    privacy.erase(person, requested_by="supporter")
    with pytest.raises(privacy.ErasureRefused):
        privacy.erase(person, requested_by="supporter")


def test_erasure_without_the_csrf_token_is_400_and_erases_nothing(app_ctx, client, stripe_donor):
    person = stripe_donor["supporter"]

    response = client.post(f"{account_path(person)}/erase", data={})

    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Supporter, person.id).email == EMAIL
    assert db.session.scalars(select(Erasure)).all() == []


def test_a_name_inside_other_words_is_left_alone(app_ctx):
    assert privacy._replace_all({"s": "Ann: your Annual statement, ann@example.com"}, ["ann@example.com", "ann"]) == {
        "s": "[erased]: your Annual statement, [erased]"}


def test_staff_get_409_when_the_gateway_refuses_and_nothing_is_erased(app, client):
    donation_id = webhook_gift(client, email=EMAIL)
    with in_app(app):
        supporter_id = db.session.get(Donation, donation_id).supporter_id
        db.session.add(RecurringDonation(supporter_id=supporter_id, amount=1000, currency="EUR",
                                         frequency=Frequency.MONTHLY, status=RecurringStatus.ACTIVE,
                                         stripe_subscription_id="sub_the_sandbox_never_had"))
        db.session.commit()
    staff = signed_in(client, "admin")

    response = staff.post(f"/staff/supporters/{supporter_id}/erase", {"reason": "Asked by phone"})

    assert response.status_code == 409
    assert "Not erased" in response.get_data(as_text=True)
    with in_app(app):
        assert db.session.get(Supporter, supporter_id).email == EMAIL
        assert db.session.scalars(select(Erasure)).all() == []
        [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "supporter.erase")).all()
        assert (entry.outcome, entry.actor_id) == ("failed", staff.id)
