"""Demo content for `make run`: a year of gifts, so that the staff dashboard has something to show."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from .campaigns.operations import DEFAULT_SLUG, get_active
from .extensions import db
from .ledger.models import (
    Donation,
    DonationStatus,
    Frequency,
    Payout,
    RecurringDonation,
    RecurringStatus,
    Supporter,
)
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
    _pay_out(now)
    return added


def _pay_out(now: datetime) -> None:
    """Stripe's side of the demo gifts: each settles at 1.5 % + 0.25 (as the sandbox charges), and every
    week's net goes to the bank in one payout per currency, so the books and payouts pages have content."""
    from .ledger.payouts import book_balance

    weeks: dict[tuple[str, object], list[Donation]] = {}
    for donation in db.session.scalars(select(Donation).order_by(Donation.paid_at)):
        fee = (donation.amount * 15 + 999) // 1000 + 25
        donation.fee, donation.net, donation.settlement_currency = fee, donation.amount - fee, donation.currency
        monday = (donation.paid_at - timedelta(days=donation.paid_at.weekday())).date()
        if donation.paid_at < now - timedelta(days=9):
            weeks.setdefault((donation.currency, monday), []).append(donation)
        else:
            book_balance(_balance(donation), donation_id=donation.id)
    for (currency, monday), gifts in sorted(weeks.items()):
        created = datetime.combine(monday + timedelta(days=7), datetime.min.time(), timezone.utc)
        payout = Payout(stripe_payout_id=f"po_demo_{currency.lower()}_{monday:%Y%m%d}", currency=currency,
                        amount=sum(gift.net for gift in gifts), status="paid", created=created,
                        arrival_date=monday + timedelta(days=9), status_at=created)
        db.session.add(payout)
        db.session.flush()
        for gift in gifts:
            book_balance(_balance(gift), donation_id=gift.id, payout=payout)
        book_balance({"id": f"txn_{payout.stripe_payout_id}", "type": "payout", "amount": -payout.amount, "fee": 0,
                      "currency": currency, "created": int(created.timestamp()),
                      "source": payout.stripe_payout_id}, payout=payout)
        payout.lines_total, payout.lines_count, payout.reconciled_at = payout.amount, len(gifts) + 1, created


def _balance(donation: Donation) -> dict:
    return {"id": f"txn_demo_{donation.id}", "type": "charge", "amount": donation.amount, "fee": donation.fee,
            "currency": donation.currency, "created": int(donation.paid_at.timestamp()),
            "source": f"ch_demo_{donation.id}"}


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
