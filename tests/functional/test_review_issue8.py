"""Review of issue 8's defences and privacy features: defects a reader, an attacker or the publisher would hit."""
from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from donations.security import antifraud
from tests.functional.antifraud_helpers import (  # noqa: F401  (fixtures)
    filled_form,
    form_clock,
    form_page,
    fresh_attack_mode,
    hidden,
)




def _stamp(app, seconds_ago: float) -> str:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="donations.donate-form.started").dumps(
        {"t": time.time() - seconds_ago})


def test_a_reader_who_fixes_a_typo_quickly_after_a_slow_first_fill_is_not_taken_for_a_bot(app, client, monkeypatch):
    """The form re-shown after a validation error must keep the reader's clock: they filled the form in at
    human speed, and correcting one field and pressing Donate again takes a second, not FORM_MIN_SECONDS."""
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    html = form_page(client)
    # The reader took a minute over the form, and mistyped the email.
    first = client.post("/donate", data=filled_form(html, started=_stamp(app, 60), email="reader@example"))
    assert first.status_code == 400
    page = first.get_data(as_text=True)
    assert "quicker than a person" not in page

    # Fixing the address and pressing Donate again at once goes through.
    again = client.post("/donate", data=filled_form(page, email="reader@example.com"))
    assert again.status_code == 303, again.get_data(as_text=True)[:2000]


def test_a_fresh_form_sent_back_at_once_is_still_refused(app, client, monkeypatch, form_clock):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    html = form_page(client)
    fast = client.post("/donate", data=filled_form(html, email="reader@example"))
    assert fast.status_code == 400 and "quicker than a person" in fast.get_data(as_text=True)
    # The stamp the refusal shows again is a fresh one: sending it straight back is refused too.
    again = client.post("/donate", data=filled_form(fast.get_data(as_text=True), email="reader@example.com"))
    assert again.status_code == 400 and "quicker than a person" in again.get_data(as_text=True)


# -- erasure, then the same person gives again ---------------------------------------------------------

from sqlalchemy import select  # noqa: E402

from donations.extensions import db  # noqa: E402
from donations.ledger.models import Donation, Supporter  # noqa: E402
from donations.mail.models import OutboxEmail  # noqa: E402
from donations.security import privacy  # noqa: E402
from tests.factories import checkout_session, event, make_attempt, post_event  # noqa: E402


def test_a_supporter_who_erased_their_data_and_gives_again_later_gets_their_new_gift_and_receipt(app_ctx, client):
    first = make_attempt(email="back@example.com", name="Bea Back")
    db.session.commit()
    assert post_event(client, event("checkout.session.completed", checkout_session(first))).status_code == 200
    person = db.session.scalars(select(Supporter).where(Supporter.email == "back@example.com")).one()
    privacy.erase(person, requested_by="supporter")
    db.session.commit()

    # Months later they come back through the donation form, and give again with the same address.
    again = make_attempt(email="back@example.com", name="Bea Back")
    db.session.commit()
    assert post_event(client, event("checkout.session.completed", checkout_session(again))).status_code == 200

    db.session.expire_all()
    gift = db.session.scalars(select(Donation).where(Donation.attempt_id == again.id)).one()
    donor = db.session.get(Supporter, gift.supporter_id)
    assert donor.email == "back@example.com"
    assert "back@example.com" in [e.to_address for e in db.session.scalars(select(OutboxEmail))]


# -- the per-address limit and IPv6 ----------------------------------------------------------------------

from tests.conftest import reset_limits  # noqa: E402
from tests.functional.antifraud_helpers import API, api_body  # noqa: E402


def test_one_ipv6_network_rotating_its_addresses_meets_the_per_address_limit(app, client, monkeypatch):
    """Every IPv6 customer holds a whole /64 (2^64 addresses): keyed on the full address, a card tester
    rotating through theirs would never meet the per-address limit, only the global one every reader shares."""
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_PER_IP", "2 per minute")
    reset_limits()
    statuses = [client.post(API, json=api_body(email=f"r{n}@example.com"),
                            environ_base={"REMOTE_ADDR": f"2001:db8:77:1::{n:x}"}).status_code for n in range(1, 5)]
    assert statuses == [201, 201, 429, 429]
    # Another network is another reader.
    other = client.post(API, json=api_body(email="x@example.com"), environ_base={"REMOTE_ADDR": "2001:db8:77:2::1"})
    assert other.status_code == 201
    reset_limits()


# -- GDPR access: the history of a recurring gift ---------------------------------------------------------

from donations.accounts.tokens import manage_url  # noqa: E402
from donations.ledger.models import RecurringChange, RecurringDonation  # noqa: E402
from tests.staff_helpers import in_app, sandbox_gift  # noqa: E402


def test_the_data_download_includes_the_history_of_the_supporters_recurring_gifts(app, client):
    """What happened to a monthly gift (started, paused, amount changed, cancelled), when, is data held about
    the supporter: staff see it on the gift's history, so the supporter's own copy must hold it too."""
    gift_id = sandbox_gift(app, email="monthly.reader@example.com", frequency="monthly")
    with in_app(app):
        person = db.session.get(Supporter, db.session.get(Donation, gift_id).supporter_id)
        recurring = db.session.scalars(select(RecurringDonation).where(RecurringDonation.supporter_id == person.id)).one()
        changes = db.session.scalars(select(RecurringChange).where(
            RecurringChange.recurring_donation_id == recurring.id)).all()
        assert changes  # the gift's history as staff see it
        expected = sorted((c.what, c.old, c.new) for c in changes)
        path = manage_url(person.id, person.email).removeprefix("http://donations.test")
    data = client.get(f"{path}/data.json").get_json()
    history = data["recurring_gift_changes"]
    assert sorted((h["what"], h["old"], h["new"]) for h in history) == expected
    assert {h["recurring_gift_id"] for h in history} == {recurring.id}


# -- logs ---------------------------------------------------------------------------------------------------

from donations.security.logging import Scrubber  # noqa: E402


@pytest.mark.parametrize("url", ["redis://:s3cret-pass@cache.internal:6379/0",
                                 "rediss://:s3cret-pass@cache.internal:6380",
                                 "memcached://user:s3cret-pass@cache.internal:11211"])
def test_a_password_in_a_storage_url_never_reaches_the_log(url):
    """Redis URLs usually carry a password without a user name (redis://:password@host): RATELIMIT_STORAGE_URI
    quoted in an error (limits names the URL it could not use) must not write it to the log."""
    line = Scrubber()(f"rate limit storage {url} unreachable")
    assert "s3cret-pass" not in line and "cache.internal" in line
