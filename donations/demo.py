"""Demo content for `make run`: a year of gifts, so that the staff dashboard has something to show."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from .campaigns.operations import DEFAULT_SLUG, get_active
from .extensions import db
from .ledger.models import Donation, DonationStatus, Frequency, RecurringDonation, RecurringStatus, Supporter
from .ledger.operations import next_receipt_number

NAMES = ["Ada", "Ben", "Chloé", "Dara", "Emil", "Fatima", "Grace", "Hugo", "Ines", "Jonas", "Kofi", "Lena",
         "Mateo", "Noor", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tess"]
ARTICLES = ["https://news.example.org/river-towns-libraries", "https://news.example.org/council-budget",
            "https://news.example.org/school-meals", "https://news.example.org/bridge-repairs"]


def seed(supporters: int = 120, seed_value: int = 7) -> int:
    """Add a year of one-off and monthly gifts, unless the ledger has any already; returns donations added.
    Written straight to the ledger, without emails: these people do not exist."""
    if db.session.scalar(select(func.count()).select_from(Donation)):
        return 0
    rng = random.Random(seed_value)
    campaign = get_active(DEFAULT_SLUG)
    now = datetime.now(timezone.utc)
    added = 0
    for n in range(supporters):
        name = f"{rng.choice(NAMES)} Demo{n}"
        person = Supporter(email=f"demo{n}@example.net", name=name)
        db.session.add(person)
        currency = rng.choices(["EUR", "USD", "GBP"], weights=[6, 2, 2])[0]
        start = now - timedelta(days=rng.randint(0, 360), minutes=rng.randint(0, 1440))
        article = rng.choice(ARTICLES)
        if rng.random() < 0.35:
            amount = rng.choice([500, 1000, 2000])
            recurring = RecurringDonation(
                supporter=person, campaign_id=campaign.id, amount=amount, currency=currency,
                frequency=Frequency.MONTHLY, status=RecurringStatus.ACTIVE, article_url=article,
                stripe_subscription_id=f"sub_demo_{n}", created_at=start,
            )
            db.session.add(recurring)
            paid_at, months = start, 0
            while paid_at <= now:
                added += _gift(person, campaign.id, amount, currency, Frequency.MONTHLY, paid_at, article,
                               recurring=recurring, invoice=f"in_demo_{n}_{months}")
                paid_at += timedelta(days=30)
                months += 1
            recurring.current_period_end = paid_at
            if rng.random() < 0.15:
                recurring.status, recurring.canceled_at = RecurringStatus.CANCELED, paid_at - timedelta(days=12)
            elif rng.random() < 0.08:
                recurring.status = RecurringStatus.PAST_DUE
        else:
            for _ in range(rng.choice([1, 1, 1, 2])):
                amount = rng.choice([1000, 2500, 2500, 5000, 10000])
                added += _gift(person, campaign.id, amount, currency, Frequency.ONE_OFF, start, article)
                start = min(now, start + timedelta(days=rng.randint(20, 120)))
    db.session.flush()
    return added


def _gift(person, campaign_id, amount, currency, frequency, paid_at, article, recurring=None, invoice=None) -> int:
    donation = Donation(
        supporter=person, campaign_id=campaign_id, amount=amount, currency=currency, frequency=frequency,
        status=DonationStatus.SUCCEEDED, article_url=article, paid_at=paid_at, created_at=paid_at,
        recurring_donation=recurring, stripe_invoice_id=invoice,
        stripe_subscription_id=recurring.stripe_subscription_id if recurring else None,
        receipt_number=next_receipt_number(paid_at.year),
    )
    db.session.add(donation)
    return 1
