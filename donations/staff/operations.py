"""What staff see and do: dashboard figures, supporter search, refunds, campaign edits, users."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import current_app
from sqlalchemy import and_, case, exists, func, insert, literal, or_, select, text, union, union_all
from sqlalchemy.sql.elements import ColumnElement

from ..campaigns.models import (
    Allocation,
    Campaign,
    CampaignTranslation,
    CampaignVariant,
    GoalPeriod,
    Placement,
)
from ..campaigns.operations import DEFAULT_SLUG
from ..extensions import db
from ..ledger.models import (
    Dispute,
    Donation,
    DonationStatus,
    Frequency,
    RecurringChange,
    RecurringDonation,
    RecurringStatus,
    Refund,
    Supporter,
)
from ..mail import emails
from ..mail.models import EmailStatus, OutboxEmail
from ..mail.sender import requeue
from ..money import Money, MoneyError, check_amount
from ..payments.gateway import get_gateway
from ..reports.statements import statements_of
from .auth import audit
from .history import STATUS_LABELS, ChangeLine, describe
from .models import AuditEntry, DashboardSnapshot, DashboardSnapshotArticle, Role, StaffUser

#: Donations whose money arrived (whatever happened to it later).
PAID = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.REFUNDED, DonationStatus.DISPUTED)
PAGE = 50


class StaffActionError(ValueError):
    """A staff action that cannot be done; the message is shown to them."""


def utc_day(day: date) -> datetime:
    return datetime.combine(day, time.min, timezone.utc)


# -- supporters and donations -----------------------------------------------------------------------

SUPPORTER_KINDS = {
    "one_off": "Gave once",
    "recurring": "Recurring, active",
    "past_due": "Recurring, past due",
    "canceled": "Recurring, cancelled",
}


@dataclass
class Filters:
    q: str = ""
    kind: str = ""
    campaign_id: int | None = None
    currency: str = ""
    date_from: date | None = None
    date_to: date | None = None
    before: int | None = None  #: keyset pagination: ids below this one


def _donation_match(filters: Filters) -> list[ColumnElement]:
    where: list[ColumnElement] = []
    if filters.campaign_id:
        where.append(Donation.campaign_id == filters.campaign_id)
    if filters.currency:
        where.append(Donation.currency == filters.currency)
    if filters.date_from:
        where.append(Donation.paid_at >= utc_day(filters.date_from))
    if filters.date_to:
        where.append(Donation.paid_at < utc_day(filters.date_to + timedelta(days=1)))
    return where


def search_supporters(filters: Filters) -> tuple[list[Supporter], int | None]:
    """One page of supporters, newest first, and the id to continue from (keyset pagination: an index
    walk, fast however deep the page)."""
    stmt = select(Supporter)
    q = filters.q.strip()
    if q:
        if q.startswith(("cus_", "sub_", "pi_", "in_", "cs_")):
            # The supporters a Stripe id names, each found through its own unique index: an OR of EXISTS
            # over supporters would instead test every supporter, newest first, until 51 matched.
            stmt = stmt.where(Supporter.id.in_(union(
                select(Supporter.id).where(Supporter.stripe_customer_id == q),
                select(Donation.supporter_id).where(or_(
                    Donation.stripe_payment_intent_id == q, Donation.stripe_invoice_id == q,
                    Donation.stripe_checkout_session_id == q, Donation.stripe_subscription_id == q)),
                select(RecurringDonation.supporter_id).where(RecurringDonation.stripe_subscription_id == q),
            )))
        else:
            stmt = stmt.where(or_(Supporter.email.startswith(q.lower(), autoescape=True),
                                  Supporter.name.icontains(q, autoescape=True)))
    recurring_status = {"recurring": RecurringStatus.ACTIVE, "past_due": RecurringStatus.PAST_DUE,
                        "canceled": RecurringStatus.CANCELED}.get(filters.kind)
    if recurring_status is not None:
        stmt = stmt.where(exists().where(RecurringDonation.supporter_id == Supporter.id,
                                         RecurringDonation.status == recurring_status))
    donation_where = _donation_match(filters)
    if filters.kind == "one_off":
        donation_where.append(Donation.frequency == Frequency.ONE_OFF)
    if donation_where:
        stmt = stmt.where(exists().where(Donation.supporter_id == Supporter.id, *donation_where))
    if filters.before:
        stmt = stmt.where(Supporter.id < filters.before)
    rows = list(db.session.scalars(stmt.order_by(Supporter.id.desc()).limit(PAGE + 1)))
    return rows[:PAGE], (rows[PAGE - 1].id if len(rows) > PAGE else None)


def list_donations(filters: Filters) -> tuple[list[Donation], int | None]:
    stmt = select(Donation).join(Supporter, Donation.supporter_id == Supporter.id)
    q = filters.q.strip()
    if q:
        stmt = stmt.where(or_(Supporter.email.startswith(q.lower(), autoescape=True),
                              Donation.stripe_payment_intent_id == q, Donation.stripe_invoice_id == q,
                              Donation.receipt_number == q))
    where = _donation_match(filters)
    if filters.kind == "one_off":
        where.append(Donation.frequency == Frequency.ONE_OFF)
    elif filters.kind in ("recurring", "past_due", "canceled"):
        where.append(Donation.recurring_donation_id.is_not(None))
    if filters.before:
        where.append(Donation.id < filters.before)
    rows = list(db.session.scalars(stmt.where(*where).order_by(Donation.id.desc()).limit(PAGE + 1)))
    return rows[:PAGE], (rows[PAGE - 1].id if len(rows) > PAGE else None)


def supporter_timeline(supporter: Supporter) -> dict:
    recurring = list(db.session.scalars(select(RecurringDonation)
                                        .where(RecurringDonation.supporter_id == supporter.id)
                                        .order_by(RecurringDonation.created_at.desc())))
    return {
        "donations": list(db.session.scalars(select(Donation).where(Donation.supporter_id == supporter.id)
                                             .order_by(Donation.created_at.desc()))),
        "recurring": recurring,
        "status_labels": STATUS_LABELS,
        "changes": _changes_by_gift(supporter, recurring),
        "statements": statements_of(supporter),
        "emails": list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_address == supporter.email)
                                          .order_by(OutboxEmail.created_at.desc()).limit(100))),
    }


def _changes_by_gift(supporter: Supporter, recurring: list[RecurringDonation]) -> dict[int, list[ChangeLine]]:
    """Each recurring gift's history, oldest first, in words and money (donations.staff.history)."""
    rows = db.session.scalars(
        select(RecurringChange).join(RecurringDonation, RecurringChange.recurring_donation_id == RecurringDonation.id)
        .where(RecurringDonation.supporter_id == supporter.id).order_by(RecurringChange.at, RecurringChange.id))
    by_gift: dict[int, list[RecurringChange]] = {}
    for change in rows:
        by_gift.setdefault(change.recurring_donation_id, []).append(change)
    gifts = {gift.id: gift for gift in recurring}
    return {gift_id: describe(gifts[gift_id], changes) for gift_id, changes in by_gift.items()}


def resend_receipt(donation: Donation) -> None:
    """Send the receipt again, to the supporter's current address, as a new outbox email."""
    if donation.receipt_number is None:
        raise StaffActionError("This donation has no receipt (it was never paid).")
    count = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "receipt.resend", AuditEntry.object_id == str(donation.id)))
    emails.queue_receipt(donation, resend=count + 1)
    audit("receipt.resend", "donation", donation.id, to=donation.supporter.email)


def resend_email(email: OutboxEmail) -> None:
    """Put a failed email back in the outbox to be sent now, as the same message (same Message-ID)."""
    if email.status is not EmailStatus.FAILED:
        raise StaffActionError(f"Only a failed email can be sent again; this one is {email.status.value}.")
    requeue(email)
    audit("email.resend", "outbox_email", email.id, to=email.to_address, template=email.template,
          last_error=email.last_error)


def possible_duplicates() -> int:
    """How many sends may have delivered an email twice (a sender stopped after the server took it)."""
    return db.session.scalar(select(func.coalesce(func.sum(OutboxEmail.possible_duplicates), 0)))


def check_refund(donation: Donation, amount: Money) -> None:
    """Whether ``amount`` may be refunded from ``donation`` now; raises StaffActionError saying why not.
    Asks nobody: the confirmation step runs it before anything is sent to the gateway."""
    if donation.status not in (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED):
        raise StaffActionError(f"A {donation.status.value.replace('_', ' ')} donation cannot be refunded.")
    if amount.currency != donation.currency or amount.amount <= 0:
        raise StaffActionError("Enter an amount more than zero.")
    left = donation.amount - donation.amount_refunded
    if amount.amount > left:
        raise StaffActionError(f"At most {Money(left, donation.currency).format()} is left to refund.")
    if not donation.stripe_payment_intent_id:
        raise StaffActionError("The payment behind this donation is not known yet; try again in a minute.")


def refund(donation: Donation, amount: Money, token: str) -> None:
    """Ask the gateway to refund part or all of a donation. The ledger changes when Stripe's
    ``charge.refunded`` arrives; the form's token is the idempotency key, so a double-submit refunds once."""
    check_refund(donation, amount)
    answer = get_gateway().refund(donation.stripe_payment_intent_id, amount=amount.amount,
                                  idempotency_key=f"donations-refund-{donation.id}-{token}")
    already = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "donation.refund", AuditEntry.object_id == str(donation.id),
        AuditEntry.detail["refund_id"].as_string() == answer["id"]))
    if not already:  # a double-submitted form gets Stripe's first answer again: one refund, one entry
        audit("donation.refund", "donation", donation.id, amount=amount.amount, currency=amount.currency,
              refund_id=answer["id"])


def parse_refund_amount(text: str, donation: Donation) -> Money:
    try:
        return Money.from_major(text, donation.currency)
    except MoneyError as exc:
        raise StaffActionError(str(exc)) from None


# -- campaigns -------------------------------------------------------------------------------------

def parse_presets(text: str, currency: str) -> list[int]:
    """"10, 25, 50" in major units → minor units; at most 6, each a valid gift."""
    amounts = []
    for part in [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]:
        try:
            amounts.append(Money.from_major(part, currency).amount)
        except MoneyError as exc:
            raise StaffActionError(f"{currency}: {exc}") from None
    if any(a <= 0 for a in amounts) or len(amounts) > 6:
        raise StaffActionError(f"{currency}: up to 6 amounts, each more than zero.")
    for amount in amounts:  # a preset a reader could not give would only produce an error
        try:
            check_amount(Money(amount, currency), current_app.config)
        except MoneyError as exc:
            raise StaffActionError(f"{currency}: {exc}") from None
    return amounts


def update_campaign(campaign: Campaign, *, headline: str, body: str, button_label: str, thank_you: str,
                    default_frequency: Frequency, presets: dict[str, dict[str, list[int]]]) -> None:
    """Save the ask; it is live at once. Text is stored as typed and escaped wherever it is shown."""
    before = {"headline": campaign.headline, "body": campaign.body, "button_label": campaign.button_label,
              "thank_you": campaign.thank_you, "default_frequency": campaign.default_frequency.value,
              "presets": campaign.presets}
    campaign.headline, campaign.body, campaign.button_label = headline, body, button_label
    campaign.thank_you, campaign.default_frequency = thank_you, default_frequency
    campaign.presets = presets
    after = {**before, "headline": headline, "body": body, "button_label": button_label, "thank_you": thank_you,
             "default_frequency": default_frequency.value, "presets": presets}
    audit("campaign.edit", "campaign", campaign.id,
          changed={k: {"from": before[k], "to": after[k]} for k in before if before[k] != after[k]})


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Frequency, Placement, Allocation, GoalPeriod)):
        return value.value
    return value


def _apply(obj, values: dict) -> dict:
    """Set ``values`` on ``obj``; returns what changed, {field: {"from": …, "to": …}}, for the audit log."""
    changed = {}
    for name, value in values.items():
        before = getattr(obj, name)
        if _jsonable(before) != _jsonable(value):
            changed[name] = {"from": _jsonable(before), "to": _jsonable(value)}
            setattr(obj, name, value)
    return changed


#: A new campaign's copy when there is no default campaign to start from.
FALLBACK_COPY = {
    "headline": "Support independent journalism",
    "body": "{publication} is funded by its readers. Give what you can.",
    "button_label": "Donate",
    "presets": {},
    "default_frequency": Frequency.MONTHLY,
}


def create_campaign(*, slug: str, name: str, language: str) -> Campaign:
    """A new campaign, inactive until staff switch it on (so that a half-made ask never reaches readers),
    with the default campaign's copy and presets to start from, and its control variant."""
    if db.session.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
        raise StaffActionError(f"A campaign with the slug {slug!r} exists.")
    template = db.session.scalars(select(Campaign).where(Campaign.slug == DEFAULT_SLUG)).one_or_none()
    copy = ({"headline": template.headline, "body": template.body, "button_label": template.button_label,
             "presets": template.presets, "default_frequency": template.default_frequency,
             "default_currency": template.default_currency} if template else FALLBACK_COPY)
    campaign = Campaign(slug=slug, name=name, language=language, active=False, **copy)
    db.session.add(campaign)
    db.session.flush()
    audit("campaign.create", "campaign", campaign.id, slug=slug, name=name, language=language)
    return campaign


def update_campaign_settings(campaign: Campaign, **values) -> None:
    """Save where, when and how a campaign shows (schedule, goal, rules, placement, cap, allocation); live at
    once. The form has checked every value; a campaign without a goal amount has no goal currency either.
    NoWeightLeft (nothing changed) when it would be active, split by weight, with no weighted active variant."""
    if values.get("goal_amount") is None:
        values["goal_currency"] = None
    _lock_variants(campaign)
    if not weighted_variant_left(campaign, active=values.get("active", campaign.active),
                                 allocation=values.get("allocation", campaign.allocation),
                                 variants=[(v.active, v.weight) for v in campaign.variants]):
        raise NoWeightLeft(NO_WEIGHT_LEFT)
    changed = _apply(campaign, values)
    if changed:
        audit("campaign.settings", "campaign", campaign.id, changed=changed)


class DuplicateVariantKey(StaffActionError):
    """The campaign has a variant with this key already."""


def _check_variant_key(campaign: Campaign, key: str) -> None:
    if campaign.variant(key) is not None:
        raise DuplicateVariantKey(f"This campaign has a variant {key!r} already.")


def create_variant(campaign: Campaign, *, key: str, **values) -> CampaignVariant:
    """A new variant of ``campaign``; its key is fixed from now on (it travels in counts and donation links)."""
    _check_variant_key(campaign, key)
    variant = CampaignVariant(campaign=campaign, key=key, **values)
    db.session.add(variant)
    db.session.flush()
    audit("variant.create", "campaign_variant", variant.id, campaign_id=campaign.id, key=key,
          **{name: _jsonable(value) for name, value in values.items()})
    return variant


class NoWeightLeft(StaffActionError):
    """Split by weight, an active campaign would have no active variant with a weight above 0: the embed
    would send no reader to any variant and the campaign would silently leave the readers' pages."""


NO_WEIGHT_LEFT = ("At least one active variant must have a weight above 0 while the campaign is active and "
                  "splits readers by weight; otherwise the campaign shows to no reader.")


def _lock_variants(campaign: Campaign) -> None:
    """Lock the campaign's row (PostgreSQL) and read its variants afresh, so that two editors saving at once take
    turns: neither can take the last weighted variant away on the strength of what the other is changing."""
    db.session.execute(select(Campaign.id).where(Campaign.id == campaign.id).with_for_update())
    db.session.scalars(select(CampaignVariant).where(CampaignVariant.campaign_id == campaign.id)
                       .execution_options(populate_existing=True)).all()
    db.session.refresh(campaign, ["variants"])


def weighted_variant_left(campaign: Campaign, *, active: bool, allocation: Allocation,
                          variants: list[tuple[bool, int]]) -> bool:
    """Whether ``campaign`` would still show to readers as far as its variants go: True when it is inactive,
    splits by Thompson sampling (weights are not read), or has an active variant (``(active, weight)``) with
    a weight above 0 (see donations.campaigns.experiments.allocation)."""
    return not active or allocation is not Allocation.SPLIT or any(on and weight > 0 for on, weight in variants)


def update_variant(variant: CampaignVariant, **values) -> None:
    """Save a variant's settings and copy overrides. A campaign keeps at least one active variant, so that
    every impression and gift can name one; and while it is active and split by weight, one active variant
    with a weight above 0 (NoWeightLeft), so that it keeps showing. Raises before anything is changed."""
    _lock_variants(variant.campaign)
    if not values.get("active", True) and variant.active and not [
            v for v in variant.campaign.variants if v.active and v.id != variant.id]:
        raise StaffActionError("A campaign needs at least one active variant: activate another one first.")
    campaign = variant.campaign
    after = [(values.get("active", v.active), values.get("weight", v.weight)) if v.id == variant.id
             else (v.active, v.weight) for v in campaign.variants]
    if not weighted_variant_left(campaign, active=campaign.active, allocation=campaign.allocation, variants=after):
        raise NoWeightLeft(NO_WEIGHT_LEFT)
    changed = _apply(variant, values)
    if changed:
        audit("variant.edit", "campaign_variant", variant.id, campaign_id=variant.campaign_id, key=variant.key,
              changed=changed)


TRANSLATED = ("headline", "body", "button_label", "thank_you")


def save_translation(variant: CampaignVariant, locale: str, **texts: str | None) -> CampaignTranslation | None:
    """Save a variant's copy in ``locale``; empty texts fall back (see CampaignTranslation). With every text
    empty the translation is removed. Returns the translation, or None when removed (or never made)."""
    texts = {name: (texts.get(name) or "").strip() or None for name in TRANSLATED}
    found = next((t for t in variant.translations if t.locale == locale), None)
    if not any(texts.values()):
        if found is not None:
            variant.translations.remove(found)
            audit("translation.delete", "campaign_variant", variant.id, campaign_id=variant.campaign_id,
                  locale=locale, was={name: getattr(found, name) for name in TRANSLATED})
        return None
    if found is None:
        found = CampaignTranslation(variant=variant, locale=locale)
        db.session.add(found)
    changed = _apply(found, texts)
    if changed:
        audit("translation.edit", "campaign_variant", variant.id, campaign_id=variant.campaign_id, locale=locale,
              changed=changed)
    return found


# -- users -----------------------------------------------------------------------------------------

def change_user(user: StaffUser, *, role: Role, active: bool, actor: StaffUser) -> None:
    if user.id == actor.id and (role is not Role.ADMIN or not active):
        raise StaffActionError("You cannot remove your own admin rights or deactivate yourself.")
    from .auth import end_all_sessions

    changes = {}
    if user.role is not role:
        changes["role"] = {"from": user.role.value, "to": role.value}
        user.role = role
    if user.active != active:
        changes["active"] = {"from": user.active, "to": active}
        user.active = active
    if changes:
        end_all_sessions(user)  # a changed role or a deactivation takes effect on the next request
        audit("user.change", "staff_user", user.id, **changes)


# -- the dashboard ---------------------------------------------------------------------------------

@dataclass
class Period:
    label: str
    start: datetime
    end: datetime


def periods(today: date, date_from: date | None, date_to: date | None) -> list[Period]:
    result = [
        Period("Today", utc_day(today), utc_day(today + timedelta(days=1))),
        Period("This month", utc_day(today.replace(day=1)), utc_day(today + timedelta(days=1))),
        Period("Year to date", utc_day(today.replace(month=1, day=1)), utc_day(today + timedelta(days=1))),
    ]
    if date_from and date_to and date_from <= date_to:
        result.append(Period(f"{date_from} – {date_to}", utc_day(date_from), utc_day(date_to + timedelta(days=1))))
    return result


def _money_by_currency(rows) -> dict[str, int]:
    return {currency: int(total or 0) for currency, total in rows}


def figures(period: Period, snapshot: DashboardSnapshot | None = None) -> dict:
    """Every figure of one period, money per currency, each an aggregate query. With a ``snapshot`` that covers
    the period's start, the money raised is the snapshot's days plus the donations it did not see."""
    in_period = and_(Donation.paid_at >= period.start, Donation.paid_at < period.end)
    stmt = (select(Donation.currency, func.sum(Donation.amount), func.count())
            .where(Donation.status.in_(PAID), in_period).group_by(Donation.currency))
    raised: dict[str, list[int]] = {}
    if _covers(snapshot, period.start, period.end):
        stmt = stmt.where(_unseen(snapshot))
        for currency, total, gifts in _snapshot_days(snapshot, period.start.date()):
            _add(raised, currency, total, gifts)
    for currency, total, gifts in db.session.execute(stmt):
        _add(raised, currency, int(total), gifts)
    refunds = db.session.execute(
        select(Refund.currency, func.sum(Refund.amount))
        .where(Refund.refunded_at >= period.start, Refund.refunded_at < period.end)
        .group_by(Refund.currency)
    ).all()
    return {
        "raised": {c: total for c, (total, _) in sorted(raised.items())},
        "gifts": sum(n for _, n in raised.values()),
        "refunds": _money_by_currency(refunds),
        "disputes": db.session.scalar(select(func.count()).select_from(Dispute).where(
            Dispute.opened_at >= period.start, Dispute.opened_at < period.end)),
        "new_supporters": db.session.scalar(select(func.count()).select_from(Supporter).where(
            Supporter.first_gift_at >= period.start, Supporter.first_gift_at < period.end)),
        "churned": db.session.scalar(select(func.count()).select_from(RecurringDonation).where(
            RecurringDonation.canceled_at >= period.start, RecurringDonation.canceled_at < period.end)),
    }


def _add(totals: dict[str, list[int]], currency: str, amount: int, gifts: int) -> None:
    entry = totals.setdefault(currency, [0, 0])
    entry[0] += amount
    entry[1] += gifts


def recurring_now() -> dict:
    """Active recurring supporters, monthly recurring revenue per currency, gifts past due."""
    active = RecurringDonation.status == RecurringStatus.ACTIVE
    monthly = case((RecurringDonation.frequency == Frequency.MONTHLY, RecurringDonation.amount), else_=0)
    yearly = case((RecurringDonation.frequency == Frequency.YEARLY, RecurringDonation.amount), else_=0)
    mrr = db.session.execute(select(RecurringDonation.currency, func.sum(monthly), func.sum(yearly))
                             .where(active).group_by(RecurringDonation.currency)).all()
    return {
        "active_supporters": db.session.scalar(select(func.count(RecurringDonation.supporter_id.distinct()))
                                               .where(active)),
        "mrr": {c: int(m or 0) + int(y or 0) // 12 for c, m, y in mrr},
        "past_due": db.session.scalar(select(func.count()).select_from(RecurringDonation).where(
            RecurringDonation.status == RecurringStatus.PAST_DUE)),
    }


def _bucket(column, unit: str):
    """A UTC day (YYYY-MM-DD) or month (YYYY-MM) label computed by the database."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD" if unit == "day" else "YYYY-MM")
    return func.strftime("%Y-%m-%d" if unit == "day" else "%Y-%m", column)


def raised_series(start: datetime, end: datetime, snapshot: DashboardSnapshot | None = None,
                  ) -> tuple[str, dict[str, list[tuple[str, int]]]]:
    """Money raised per day (ranges up to 62 days) or per month, one series per currency (a ``snapshot`` that
    covers the range's start gives its days; the donations it did not see are added)."""
    unit = "day" if end - start <= timedelta(days=62) else "month"
    bucket = _bucket(Donation.paid_at, unit).label("bucket")
    stmt = (select(Donation.currency, bucket, func.sum(Donation.amount))
            .where(Donation.status.in_(PAID), Donation.paid_at >= start, Donation.paid_at < end)
            .group_by(Donation.currency, bucket))
    series: dict[str, dict[str, int]] = {}
    if _covers(snapshot, start, end):
        stmt = stmt.where(_unseen(snapshot))
        for currency, day, total, _ in _snapshot_days(snapshot, start.date(), with_day=True):
            label = day if unit == "day" else day[:7]
            values = series.setdefault(currency, {})
            values[label] = values.get(label, 0) + total
    for currency, label, total in db.session.execute(stmt):
        values = series.setdefault(currency, {})
        values[label] = values.get(label, 0) + int(total)
    labels = _labels(start, end, unit)
    return unit, {c: [(label, values.get(label, 0)) for label in labels] for c, values in sorted(series.items())}


def _labels(start: datetime, end: datetime, unit: str) -> list[str]:
    labels, day = [], start.date()
    while utc_day(day) < end:
        label = day.isoformat() if unit == "day" else day.strftime("%Y-%m")
        if not labels or labels[-1] != label:
            labels.append(label)
        day += timedelta(days=1)
    return labels


def month_ends(today: date, months: int = 12) -> list[tuple[str, datetime]]:
    result, first = [], today.replace(day=1)
    for _ in range(months):
        nxt = (first + timedelta(days=32)).replace(day=1)
        result.append((first.strftime("%Y-%m"), utc_day(min(nxt, today + timedelta(days=1)))))
        first = (first - timedelta(days=1)).replace(day=1)
    return list(reversed(result))


def recurring_history(today: date) -> dict:
    """Active recurring supporters and monthly recurring revenue at the end of each of the last 12 months.

    A gift is alive at a month's end when it was made before it and not cancelled by then: the months it was
    made and cancelled in say at which ends, so the database only groups the gifts by those two months (one
    pass; a query per month end, or a join to them, reads every gift 12 times), and the few supporters with
    more than one gift are counted once from their own gifts."""
    months = month_ends(today)
    labels = [label for label, _ in months]
    last_end = months[-1][1]
    made = _bucket(RecurringDonation.created_at, "month")
    # Cancelled after the last end (or not at all): alive at every end. 'alive' sorts after every YYYY-MM.
    stopped = case((or_(RecurringDonation.canceled_at.is_(None), RecurringDonation.canceled_at >= last_end),
                    literal("alive")), else_=_bucket(RecurringDonation.canceled_at, "month"))
    in_range = and_(RecurringDonation.status != RecurringStatus.INCOMPLETE, RecurringDonation.created_at < last_end,
                    or_(RecurringDonation.canceled_at.is_(None), RecurringDonation.canceled_at >= months[0][1]))

    def alive(made_in: str, stopped_in: str) -> list[bool]:
        return [made_in <= label < stopped_in for label in labels]

    gifts = [0] * len(labels)
    revenue: dict[str, list[tuple[int, int] | None]] = {}  #: per month: (monthly, yearly) amounts alive
    for currency, frequency, made_in, stopped_in, total, count in db.session.execute(
            select(RecurringDonation.currency, RecurringDonation.frequency, made, stopped,
                   func.sum(RecurringDonation.amount), func.count())
            .where(in_range).group_by(RecurringDonation.currency, RecurringDonation.frequency, made, stopped)):
        monthly = int(total) if frequency == Frequency.MONTHLY else 0
        yearly = int(total) if frequency == Frequency.YEARLY else 0
        per_month = revenue.setdefault(currency, [None] * len(labels))
        for n, is_alive in enumerate(alive(made_in, stopped_in)):
            if is_alive:
                gifts[n] += count
                before = per_month[n] or (0, 0)
                per_month[n] = (before[0] + monthly, before[1] + yearly)
    # The gifts above count a supporter once per alive gift: the few with several count once.
    several = select(RecurringDonation.supporter_id).where(in_range).group_by(RecurringDonation.supporter_id) \
        .having(func.count() > 1)
    columns = []
    for _, end in months:
        alive_then = and_(RecurringDonation.created_at < end,
                          or_(RecurringDonation.canceled_at.is_(None), RecurringDonation.canceled_at >= end))
        columns += [func.count(case((alive_then, 1))),
                    func.count(case((alive_then, RecurringDonation.supporter_id)).distinct())]
    theirs = db.session.execute(select(*columns).where(in_range, RecurringDonation.supporter_id.in_(several))).one()
    for n in range(len(labels)):
        gifts[n] -= (theirs[2 * n] or 0) - (theirs[2 * n + 1] or 0)
    return {"supporters": list(zip(labels, gifts)),
            "mrr": {currency: [(label, point[0] + point[1] // 12 if point else 0)
                               for label, point in zip(labels, per_month)]
                    for currency, per_month in sorted(revenue.items()) if any(p is not None for p in per_month)}}


def supporters_gained_and_lost(today: date) -> list[tuple[str, int, int]]:
    """Per month: supporters whose first gift it was, and recurring supporters who stopped."""
    months = month_ends(today)
    start = utc_day(date.fromisoformat(months[0][0] + "-01"))
    bucket = _bucket(Supporter.first_gift_at, "month").label("bucket")
    gained = dict(db.session.execute(select(bucket, func.count()).where(Supporter.first_gift_at >= start)
                                     .group_by(bucket)).all())
    lost_bucket = _bucket(RecurringDonation.canceled_at, "month").label("bucket")
    lost = dict(db.session.execute(select(lost_bucket, func.count()).where(RecurringDonation.canceled_at >= start)
                                   .group_by(lost_bucket)).all())
    return [(label, int(gained.get(label, 0)), int(lost.get(label, 0))) for label, _ in months]


def top(start: datetime, end: datetime, by: str, limit: int = 5,
        snapshot: DashboardSnapshot | None = None) -> dict[str, list[tuple[str, int]]]:
    """The campaigns or articles that raised most in the period, per currency (ties by name). A ``snapshot`` whose
    12-month window starts where the period does gives its totals; the donations it did not see are added."""
    if (snapshot is not None and start == utc_day(snapshot.window_start) and _covers(snapshot, start, end)):
        return _top_campaigns(start, end, limit, snapshot) if by == "campaign" else _top_articles(
            start, end, limit, snapshot)
    key = Campaign.name if by == "campaign" else Donation.article_url
    stmt = select(Donation.currency, key, func.sum(Donation.amount).label("total")).where(
        Donation.status.in_(PAID), Donation.paid_at >= start, Donation.paid_at < end)
    if by == "campaign":
        stmt = stmt.join(Campaign, Donation.campaign_id == Campaign.id)
    else:
        stmt = stmt.where(Donation.article_url.is_not(None))
    totals: dict[str, dict[str, int]] = {}
    for currency, name, total in db.session.execute(stmt.group_by(Donation.currency, key)):
        totals.setdefault(currency, {})[name] = int(total)
    return _ranked(totals, limit)


def _ranked(totals: dict[str, dict[str, int]], limit: int) -> dict[str, list[tuple[str, int]]]:
    """The first ``limit`` names per currency, most money first, ties by name (code points, as _by_name)."""
    return {currency: sorted(by_name.items(), key=lambda item: (-item[1], item[0]))[:limit]
            for currency, by_name in sorted(totals.items())}


def _by_name(column):
    """``column`` ordered by code point on every database, as Python orders strings (PostgreSQL's default
    collation follows the locale; SQLite's is binary already)."""
    return column.collate("C") if db.session.get_bind().dialect.name == "postgresql" else column


def _top_campaigns(start: datetime, end: datetime, limit: int, snapshot: DashboardSnapshot):
    by_id: dict[tuple[str, int], int] = {(currency, int(campaign_id)): total
                                         for currency, totals in snapshot.campaigns.items()
                                         for campaign_id, total in totals.items()}
    for currency, campaign_id, total in db.session.execute(
            select(Donation.currency, Donation.campaign_id, func.sum(Donation.amount))
            .where(Donation.status.in_(PAID), Donation.paid_at >= start, Donation.paid_at < end,
                   Donation.campaign_id.is_not(None), _unseen(snapshot))
            .group_by(Donation.currency, Donation.campaign_id)):
        by_id[(currency, campaign_id)] = by_id.get((currency, campaign_id), 0) + int(total)
    # Names as they are now (a campaign may have been renamed since the snapshot); one name, one row, as the
    # live query groups them.
    names = dict(db.session.execute(select(Campaign.id, Campaign.name)
                                    .where(Campaign.id.in_({campaign_id for _, campaign_id in by_id}))).all())
    by_name: dict[str, dict[str, int]] = {}
    for (currency, campaign_id), total in by_id.items():
        per_currency = by_name.setdefault(currency, {})
        per_currency[names[campaign_id]] = per_currency.get(names[campaign_id], 0) + total
    return _ranked(by_name, limit)


def _top_articles(start: datetime, end: datetime, limit: int, snapshot: DashboardSnapshot):
    live: dict[tuple[str, str], int] = {
        (currency, url): int(total) for currency, url, total in db.session.execute(
            select(Donation.currency, Donation.article_url, func.sum(Donation.amount))
            .where(Donation.status.in_(PAID), Donation.paid_at >= start, Donation.paid_at < end,
                   Donation.article_url.is_not(None), _unseen(snapshot))
            .group_by(Donation.currency, Donation.article_url))}
    # An article without live gifts keeps its snapshot total and its place among the others, so the first
    # ``limit`` of them are within the snapshot's first ``limit`` + (live articles of the currency) places:
    # those, and the snapshot totals of the live articles, are all the page reads of tens of thousands.
    reach = limit + max(Counter(currency for currency, _ in live).values(), default=0)
    article = DashboardSnapshotArticle
    found = select(article.currency, article.article_url, article.amount).where(article.snapshot_id == snapshot.id)
    rows = db.session.execute(found.where(article.place <= reach)).all()
    urls = sorted({url for _, url in live})
    for chunk in range(0, len(urls), 1000):
        rows += db.session.execute(found.where(article.article_url.in_(urls[chunk:chunk + 1000]))).all()
    totals: dict[str, dict[str, int]] = {}
    for currency, url, amount in rows:
        totals.setdefault(currency, {})[url] = int(amount)
    for (currency, url), total in live.items():
        per_currency = totals.setdefault(currency, {})
        per_currency[url] = per_currency.get(url, 0) + total
    return _ranked(totals, limit)


# -- the dashboard's snapshot ----------------------------------------------------------------------

def chart_start(today: date) -> date:
    """The first day of the dashboard's 12-month chart (and of its top campaigns and articles) on ``today``."""
    return date.fromisoformat(month_ends(today)[0][0] + "-01")


def latest_snapshot(today: date) -> DashboardSnapshot | None:
    """The newest dashboard snapshot of ``today`` or before; None when there is none (a new install, tests)."""
    return db.session.scalars(select(DashboardSnapshot).where(DashboardSnapshot.day <= today)
                              .order_by(DashboardSnapshot.day.desc()).limit(1)).first()


def _covers(snapshot: DashboardSnapshot | None, start: datetime, end: datetime) -> bool:
    """Whether [start, end) can be the snapshot's days from ``start`` on plus the donations it did not see."""
    return snapshot is not None and start >= utc_day(snapshot.since) and end >= utc_day(snapshot.day)


def _unseen(snapshot: DashboardSnapshot) -> ColumnElement[bool]:
    """The donations the snapshot did not count: paid on or after its day, booked after it was taken, or
    pending then. Every other paid donation is in its totals, and stays as it was (see DashboardSnapshot)."""
    unseen = [Donation.paid_at >= utc_day(snapshot.day), Donation.id > snapshot.watermark]
    if snapshot.pending_ids:
        unseen.append(Donation.id.in_(snapshot.pending_ids))
    return or_(*unseen)


def _snapshot_days(snapshot: DashboardSnapshot, start: date, with_day: bool = False):
    """(currency, [day,] minor units, gifts) of each of the snapshot's days from ``start`` on."""
    first = start.isoformat()
    for currency, days in snapshot.days.items():
        for day, (total, gifts) in days.items():
            if day >= first:
                yield (currency, day, total, gifts) if with_day else (currency, total, gifts)


def snapshot_watermark() -> tuple[int, list[int]]:
    """The highest donation id such that every donation up to it is committed, and the ids among them still
    pending. On PostgreSQL a SHARE lock on donations waits for every transaction writing donations to end (an
    id is taken inside the INSERT, under the table's ROW EXCLUSIVE lock, so no id below the maximum can still
    be uncommitted) and is held only for these two index reads; the caller commits at once to release it."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        db.session.execute(text("LOCK TABLE donations IN SHARE MODE"))
    watermark = db.session.scalar(select(func.coalesce(func.max(Donation.id), 0)))
    pending = list(db.session.scalars(select(Donation.id).where(Donation.id <= watermark,
                                                                  Donation.status == DonationStatus.PENDING)
                                      .order_by(Donation.id)))
    return int(watermark), pending


def compute_snapshot(day: date, watermark: int, pending_ids: list[int]) -> DashboardSnapshot:
    """The dashboard's totals over the donations paid before ``day`` with ids up to ``watermark`` (none of
    ``pending_ids``): per currency and day from 1 January or the chart's first day, per currency and campaign
    and per currency and article over the 12-month chart. Added and flushed; the caller commits."""
    window_start = chart_start(day)
    since = min(day.replace(month=1, day=1), window_start)
    seen = [Donation.status.in_(PAID), Donation.paid_at >= utc_day(since), Donation.paid_at < utc_day(day),
            Donation.id <= watermark]
    if pending_ids:
        seen.append(Donation.id.not_in(pending_ids))
    bucket = _bucket(Donation.paid_at, "day").label("bucket")
    days: dict[str, dict[str, list[int]]] = {}
    for currency, label, total, gifts in db.session.execute(
            select(Donation.currency, bucket, func.sum(Donation.amount), func.count())
            .where(*seen).group_by(Donation.currency, bucket)):
        days.setdefault(currency, {})[label] = [int(total), gifts]
    in_window = [*seen, Donation.paid_at >= utc_day(window_start)]
    campaigns: dict[str, dict[str, int]] = {}
    for currency, campaign_id, total in db.session.execute(
            select(Donation.currency, Donation.campaign_id, func.sum(Donation.amount))
            .where(*in_window, Donation.campaign_id.is_not(None)).group_by(Donation.currency, Donation.campaign_id)):
        campaigns.setdefault(currency, {})[str(campaign_id)] = int(total)
    snapshot = DashboardSnapshot(day=day, watermark=watermark, pending_ids=pending_ids, since=since,
                                 window_start=window_start, days=days, campaigns=campaigns)
    db.session.add(snapshot)
    db.session.flush()
    total = func.sum(Donation.amount)
    place = func.row_number().over(partition_by=Donation.currency,
                                   order_by=(total.desc(), _by_name(Donation.article_url)))
    db.session.execute(insert(DashboardSnapshotArticle).from_select(
        ["snapshot_id", "currency", "article_url", "amount", "place"],
        select(literal(snapshot.id), Donation.currency, Donation.article_url, total, place)
        .where(*in_window, Donation.article_url.is_not(None)).group_by(Donation.currency, Donation.article_url)))
    return snapshot


def delete_snapshots_before(day: date) -> int:
    """Delete the snapshots older than ``day`` (their articles go with them); returns how many."""
    old = list(db.session.scalars(select(DashboardSnapshot.id).where(DashboardSnapshot.day < day)))
    if old:
        db.session.execute(DashboardSnapshotArticle.__table__.delete()
                           .where(DashboardSnapshotArticle.snapshot_id.in_(old)))
        db.session.execute(DashboardSnapshot.__table__.delete().where(DashboardSnapshot.id.in_(old)))
    return len(old)
