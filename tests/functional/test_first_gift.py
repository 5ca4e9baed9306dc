"""supporters.first_gift_at: when a supporter's first gift was paid, kept as gifts are booked, so that the
dashboard counts new supporters from an index instead of a minimum over every donation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, Frequency, Supporter
from donations.ledger.operations import note_first_gift, refresh_first_gifts
from tests.staff_helpers import in_app, webhook_gift

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def first_gift(app, email: str):
    with in_app(app):
        return db.session.scalar(select(Supporter.first_gift_at).where(Supporter.email == email))


def test_a_booked_gift_sets_the_first_gift_and_a_later_one_keeps_it(client):
    webhook_gift(client, 2500, "EUR", email="ada@example.com")
    first = first_gift(client.application, "ada@example.com")

    webhook_gift(client, 1000, "EUR", email="ada@example.com")

    assert first is not None
    assert first_gift(client.application, "ada@example.com") == first


def test_a_gift_paid_earlier_moves_the_first_gift_back_and_a_later_one_does_not(app_ctx):
    person = Supporter(email="grace@example.com")
    db.session.add(person)
    db.session.flush()

    note_first_gift(person.id, T0)
    note_first_gift(person.id, T0 + timedelta(days=30))
    assert person.first_gift_at.replace(tzinfo=timezone.utc) == T0
    note_first_gift(person.id, T0 - timedelta(days=2))
    assert person.first_gift_at.replace(tzinfo=timezone.utc) == T0 - timedelta(days=2)


def test_refresh_sets_first_gifts_from_paid_donations_only(app_ctx):
    paid, unpaid = Supporter(email="paid@example.com"), Supporter(email="unpaid@example.com")
    db.session.add_all([paid, unpaid])
    for person, status, at in [(paid, DonationStatus.REFUNDED, T0), (paid, DonationStatus.SUCCEEDED, T0 + timedelta(1)),
                               (unpaid, DonationStatus.FAILED, T0), (unpaid, DonationStatus.PENDING, None)]:
        db.session.add(Donation(supporter=person, amount=500, currency="EUR", frequency=Frequency.ONE_OFF,
                                status=status, paid_at=at))

    refresh_first_gifts()

    assert paid.first_gift_at.replace(tzinfo=timezone.utc) == T0  # a refunded gift was paid all the same
    assert unpaid.first_gift_at is None
