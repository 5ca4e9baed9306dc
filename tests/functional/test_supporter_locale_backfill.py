"""The migration that adds supporters.locale gives supporters from before it the language of their first gift's
page, as note_language does for new ones; a language already chosen stays, and erased supporters get none."""
from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text, update

from donations.checkout.models import CheckoutAttempt
from donations.extensions import db
from donations.ledger.models import Donation, Supporter
from tests.staff_helpers import in_app, webhook_gift

MIGRATION = next((Path(__file__).resolve().parents[2] / "migrations" / "versions").glob("*_d4e5f6a7b8c9_*.py"))


def backfill_sql() -> str:
    spec = importlib.util.spec_from_file_location("supporters_locale_migration", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BACKFILL


def gift_in(client, email: str, locale: str, days_ago: int) -> None:
    """A gift booked through the webhook, its page in ``locale``, ``days_ago`` days ago."""
    donation_id = webhook_gift(client, email=email)
    with in_app(client.application):
        attempt_id = db.session.get(Donation, donation_id).attempt_id
        created = db.session.get(CheckoutAttempt, attempt_id).created_at - timedelta(days=days_ago)
        db.session.execute(update(CheckoutAttempt).where(CheckoutAttempt.id == attempt_id)
                           .values(locale=locale, created_at=created))
        db.session.commit()


def test_supporters_from_before_take_the_language_of_their_first_gifts_page(client):
    gift_in(client, "ada@example.com", "de", days_ago=3)
    gift_in(client, "grace@example.com", "fr", days_ago=40)  # her first gift, from a French page
    gift_in(client, "grace@example.com", "de", days_ago=2)
    gift_in(client, "chose@example.com", "fr", days_ago=5)
    gift_in(client, "erased@example.com", "de", days_ago=5)
    with in_app(client.application):
        # As the database was before the migration: no language known, but the one chosen on an account page.
        db.session.execute(update(Supporter).values(locale=None))
        db.session.execute(update(Supporter).where(Supporter.email == "chose@example.com").values(locale="en"))
        db.session.execute(update(Supporter).where(Supporter.email == "erased@example.com")
                           .values(email="erased-7@donations.invalid"))
        db.session.add(Supporter(email="nogift@example.com"))
        db.session.commit()

        db.session.execute(text(backfill_sql()), {"low": 0, "high": 2**31})
        db.session.commit()

        assert dict(db.session.execute(select(Supporter.email, Supporter.locale)).all()) == {
            "ada@example.com": "de",
            "grace@example.com": "fr",
            "chose@example.com": "en",
            "erased-7@donations.invalid": None,
            "nogift@example.com": None,
        }
