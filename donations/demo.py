"""Demo content for `make run`: a year of gifts, so that the staff dashboard has something to show, and four
weeks of an A/B test on the default campaign (control "a" against "b"), with impressions, clicks and gifts
per article, so that the campaign page and the per-article report have figures."""
from __future__ import annotations

import random
import uuid
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import func, insert, select

from .campaigns.articles import article_id_for
from .campaigns.models import Article, AskCount, Campaign, CampaignTranslation, CampaignVariant
from .campaigns.operations import DEFAULT_SLUG, get_active
from .checkout.models import AttemptStatus, CheckoutAttempt
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
from .ledger.operations import next_receipt_number, refresh_first_gifts

NAMES = ["Ada", "Ben", "Chloé", "Dara", "Emil", "Fatima", "Grace", "Hugo", "Ines", "Jonas", "Kofi", "Lena",
         "Mateo", "Noor", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tess"]
ARTICLES = ["https://news.example.org/river-towns-libraries", "https://news.example.org/council-budget",
            "https://news.example.org/school-meals", "https://news.example.org/bridge-repairs"]


def seed(supporters: int = 120, seed_value: int = 7) -> int:
    """Add a year of one-off and monthly gifts, unless the ledger has any already; returns donations added.
    Written straight to the ledger, without emails: these people do not exist."""
    campaign = get_active(DEFAULT_SLUG)
    if db.session.scalar(select(func.count()).select_from(Donation)):
        if campaign is not None:
            _translate(campaign)  # a demo seeded before the translations came gets them too
        return 0
    rng = random.Random(seed_value)
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
    added += _ab_test(campaign, now, rng)
    _translate(campaign)
    db.session.flush()
    _pay_out(now)
    refresh_first_gifts()  # the gifts above were written straight to the ledger, not through mark_succeeded
    return added


#: The default campaign's copy in German (formal "Sie") and French, per variant, so that /donate?locale=de or fr
#: shows a page translated throughout. Variant "b" has only a headline of its own; the rest comes from "a".
TRANSLATIONS = {
    "a": {
        "de": {"headline": "Unterstützen Sie unsere Arbeit mit einer Spende",
               "body": "Helfen Sie uns, mehr Artikel wie diesen zu veröffentlichen. {publication} lebt von den "
                       "Spenden seiner Leserinnen und Leser.",
               "button_label": "Spenden"},
        "fr": {"headline": "Soutenez notre travail par un don",
               "body": "Aidez-nous à publier davantage d’articles comme celui-ci. {publication} ne vit que des "
                       "dons de ses lectrices et lecteurs.",
               "button_label": "Faire un don"},
    },
    "b": {
        "de": {"headline": "Bevor Sie gehen: Helfen Sie, Lokaljournalismus für alle frei zu halten"},
        "fr": {"headline": "Avant de partir : aidez-nous à garder l’information locale gratuite pour tous"},
    },
}


def _translate(campaign: Campaign) -> None:
    """Add the German and French copy of the default campaign's variants that is not there yet (staff's own
    translations are left as they are)."""
    for key, locales in TRANSLATIONS.items():
        variant = campaign.variant(key)
        if variant is None:
            continue
        have = {translation.locale for translation in variant.translations}
        for locale, copy in locales.items():
            if locale not in have:
                variant.translations.append(CampaignTranslation(locale=locale, **copy))
    db.session.flush()


#: The demo articles' ``<meta>`` facts, as the embed would report them: section, author, title.
ARTICLE_META = {
    ARTICLES[0]: ("Local life", "A. Reporter", "How the river towns rebuilt their libraries"),
    ARTICLES[1]: ("Politics", "B. Writer", "What the council's budget means for you"),
    ARTICLES[2]: ("Education", "C. Correspondent", "School meals, one year on"),
    ARTICLES[3]: ("Local life", "A. Reporter", "The bridge repairs, explained"),
}
#: The demo test: "b" asks more urgently and converts a little better, as a test might find.
AB_RATES = {"a": 0.004, "b": 0.006}
AB_DAYS = 28


def _ab_test(campaign: Campaign, now: datetime, rng: random.Random) -> int:
    """Four weeks of the default campaign's A/B test: variant "b" beside the control, daily impressions and
    clicks per variant and article (aggregated as the counting endpoint writes them), and the gifts the ask
    produced, each with its checkout attempt, variant and article. Bulk inserts: seed-demo stays fast."""
    if campaign.variant("b") is None:
        campaign.variants.append(CampaignVariant(
            key="b", name="Urgent", weight=1, headline="Before you go: keep local news free for everyone"))
        db.session.flush()
    articles = {}
    for url, (section, author, title) in ARTICLE_META.items():
        articles[url] = article_id_for(url)
        row = db.session.get(Article, articles[url])
        row.section, row.author, row.title = section, author, title
    counts, attempts, donations, added = [], [], [], 0
    for days_ago in range(AB_DAYS - 1, -1, -1):
        day = (now - timedelta(days=days_ago)).date()
        for key, rate in AB_RATES.items():
            variant = campaign.variant(key)
            for url, article_id in articles.items():
                impressions = rng.randint(60, 160)
                counts.append({"day": day, "campaign_id": campaign.id, "variant_id": variant.id,
                               "article_id": article_id, "impressions": impressions,
                               "clicks": sum(rng.random() < 0.04 for _ in range(impressions))})
                for _ in range(sum(rng.random() < rate for _ in range(impressions))):
                    paid_at = min(now, datetime.combine(day, time(rng.randint(6, 22), rng.randint(0, 59)),
                                                        timezone.utc))
                    added += _ask_gift(added, campaign, variant, url, article_id, paid_at, rng)
    db.session.execute(insert(AskCount), counts)
    return added


def _ask_gift(n, campaign, variant, url, article_id, paid_at, rng) -> int:
    """One gift from the ask, booked as the checkout would: an attempt, a supporter, a donation naming the
    variant and article; a monthly one also starts its recurring gift (its next payment still to come)."""
    person = Supporter(email=f"ask-demo{n}@example.net", name=f"{rng.choice(NAMES)} Ask{n}")
    db.session.add(person)
    currency = rng.choices(["EUR", "USD", "GBP"], weights=[6, 2, 2])[0]
    monthly = rng.random() < 0.3
    frequency = Frequency.MONTHLY if monthly else Frequency.ONE_OFF
    amount = rng.choice([500, 1000]) if monthly else rng.choice([1000, 2500, 5000])
    attempt = CheckoutAttempt(id=str(uuid.uuid4()), campaign_id=campaign.id, email=person.email, name=person.name,
                              amount=amount, currency=currency, frequency=frequency, article_url=url,
                              variant_id=variant.id, article_id=article_id, gateway="sandbox",
                              status=AttemptStatus.COMPLETED, created_at=paid_at)
    db.session.add(attempt)
    recurring = None
    if monthly:
        recurring = RecurringDonation(
            supporter=person, campaign_id=campaign.id, attempt_id=attempt.id, amount=amount, currency=currency,
            frequency=frequency, status=RecurringStatus.ACTIVE, article_url=url, variant_id=variant.id,
            article_id=article_id, stripe_subscription_id=f"sub_askdemo_{attempt.id[:8]}", created_at=paid_at,
            current_period_end=paid_at + timedelta(days=30))
        db.session.add(recurring)
    return _gift(person, campaign.id, amount, currency, frequency, paid_at, url, recurring=recurring,
                 invoice=f"in_askdemo_{attempt.id[:8]}" if monthly else None, attempt_id=attempt.id,
                 variant_id=variant.id, article_id=article_id)


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


def _gift(person, campaign_id, amount, currency, frequency, paid_at, article, recurring=None, invoice=None,
          **attribution) -> int:
    donation = Donation(
        supporter=person, campaign_id=campaign_id, amount=amount, currency=currency, frequency=frequency,
        status=DonationStatus.SUCCEEDED, article_url=article, paid_at=paid_at, created_at=paid_at,
        recurring_donation=recurring, stripe_invoice_id=invoice,
        stripe_subscription_id=recurring.stripe_subscription_id if recurring else None,
        receipt_number=next_receipt_number(paid_at.year), **attribution,
    )
    db.session.add(donation)
    return 1
