"""Reading the ask for display: copy per variant and language, presets and formatted amounts; which
campaigns show now, with what the embed needs to place them (campaigns.json)."""
from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency
from flask import abort, current_app
from flask_babel import force_locale, gettext
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from ..db import now_utc
from ..extensions import db
from ..i18n import LANGUAGES, N_
from ..ledger.models import Frequency
from ..money import Money
from . import experiments, goals
from .models import CONTROL_KEY, Campaign, CampaignTranslation, CampaignVariant, GoalPeriod

DEFAULT_SLUG = "default"

#: A locale as a page may name it (``de``, ``de-AT``, ``zh_Hant_TW``); anything else is refused.
_LOCALE_SYNTAX = re.compile(r"[A-Za-z]{2,8}(?:[_-][A-Za-z0-9]{1,8}){0,3}")

#: The embed's few words of its own (not the staff's copy), by primary language; English for the rest. English,
#: German and French come from the catalogues (donations/translations/, msgids below); the other languages
#: are kept here until they have catalogues of their own.
UI_LABELS: dict[str, dict[str, str]] = {
    "en": {"choose": N_("Choose an amount"), "other": N_("Other"), "monthly": N_("or give monthly"),
           "close": N_("Close"), "thanks": N_("Thank you"), "goal_month": N_("{raised} of {goal} this month"),
           "goal_campaign": N_("{raised} of {goal} raised")},
    "nl": {"choose": "Kies een bedrag", "other": "Ander bedrag", "monthly": "of geef maandelijks",
           "close": "Sluiten", "thanks": "Bedankt", "goal_month": "{raised} van {goal} deze maand",
           "goal_campaign": "{raised} van {goal} opgehaald"},
    "es": {"choose": "Elige una cantidad", "other": "Otra", "monthly": "o dona cada mes", "close": "Cerrar",
           "thanks": "Gracias",
           "goal_month": "{raised} de {goal} este mes", "goal_campaign": "{raised} de {goal} recaudados"},
    "it": {"choose": "Scegli un importo", "other": "Altro", "monthly": "o dona ogni mese", "close": "Chiudi",
           "thanks": "Grazie",
           "goal_month": "{raised} di {goal} questo mese", "goal_campaign": "{raised} di {goal} raccolti"},
}


class BadEmbedRequest(ValueError):
    """A campaigns.json query that cannot be answered; the message is for the publisher's developer."""


def get_active(slug: str) -> Campaign | None:
    if not isinstance(slug, str) or len(slug) > 64 or "\x00" in slug:  # PostgreSQL text holds no NUL
        return None
    return db.session.scalars(select(Campaign).where(Campaign.slug == slug, Campaign.active.is_(True))).one_or_none()


def get_active_or_404(slug: str) -> Campaign:
    campaign = get_active(slug)
    if campaign is None:
        abort(404)
    return campaign


def primary_language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


@lru_cache(maxsize=1024)  # on every article view; Babel reads its data files to know a locale
def embed_locale(value: str | None) -> str:
    """The Babel locale identifier for a page's ``lang`` (``de-AT`` -> ``de_AT``): the locale itself when
    Babel knows it, else its primary language, else ``en`` (a page in a language we have no data for still
    gets an ask). Raises BadEmbedRequest for text that is no locale at all."""
    if value is None or value == "":
        return "en"
    if not isinstance(value, str) or len(value) > 35 or not _LOCALE_SYNTAX.fullmatch(value):
        raise BadEmbedRequest("locale must be a language tag such as en, de or de-AT.")
    for candidate in (value.replace("-", "_"), primary_language(value)):
        try:
            return str(Locale.parse(candidate))
        except (ValueError, UnknownLocaleError):
            continue
    return "en"


def _translations(variant: CampaignVariant | None, locale: str) -> list[CampaignTranslation]:
    """The variant's translations for ``locale``: the exact locale first, then its primary language (a reader
    in ``de_AT`` gets the ``de`` copy; one in ``de_CH`` gets ``de_CH`` where it says something, else ``de``)."""
    if variant is None:
        return []
    by_locale = {translation.locale.replace("-", "_").lower(): translation for translation in variant.translations}
    wanted = locale.replace("-", "_").lower()
    keys = dict.fromkeys([wanted, primary_language(wanted)])
    return [by_locale[key] for key in keys if key in by_locale]


def resolve_copy(campaign: Campaign, variant: CampaignVariant, locale: str) -> dict[str, str]:
    """Headline, body, button label and thank-you for ``variant`` in ``locale``, field by field.

    The variant's own translation wins. A variant's plain fields are written in the campaign's language, so
    for a reader in that language they come next (then the control's translation, for a regional locale such
    as en_GB); for a reader in another language the control's translation comes first, since copy in the
    reader's language beats the variant's wording in another. Last, the campaign's own copy."""
    control = campaign.variant(CONTROL_KEY)
    own_translations = _translations(variant, locale)
    control_translations = _translations(control, locale) if control is not variant else []
    same_language = primary_language(locale) == primary_language(campaign.language)
    copy = {}
    for field in ("headline", "body", "button_label", "thank_you"):
        own = [getattr(variant, field, None)]  # a variant has no thank-you of its own
        mine = [getattr(translation, field) for translation in own_translations]
        control_copy = [getattr(translation, field) for translation in control_translations]
        chain = mine + own + control_copy if same_language else mine + control_copy + own
        copy[field] = next((text for text in chain if text), getattr(campaign, field))
    copy["body"] = copy["body"].replace("{publication}", current_app.config["PUBLICATION_NAME"])
    return copy


def ask_view(campaign: Campaign, locale: str, currency: str | None = None,
             variant: CampaignVariant | str | None = None) -> dict:
    """Everything an ask shows for one variant (the control when None; a key is looked up), with copy in
    ``locale`` as far as translated and amounts formatted for it."""
    if not isinstance(variant, CampaignVariant):
        variant = campaign.variant(variant or CONTROL_KEY) or campaign.variant(CONTROL_KEY)
    currencies = current_app.config["CURRENCIES"]
    currency = currency if currency in currencies else (
        campaign.default_currency if campaign.default_currency in currencies else currencies[0]
    )
    # A variant's presets override the campaign's per frequency and currency: staff fill in only what differs.
    overrides = (variant.presets if variant is not None else None) or {}
    presets = {
        frequency.value: [
            {"amount": amount, "major": Money(amount, currency).major_str(), "label": Money(amount, currency).format(locale)}
            for amount in (overrides.get(frequency.value, {}).get(currency)
                           or campaign.presets.get(frequency.value, {}).get(currency, []))
        ]
        for frequency in Frequency
    }
    if variant is None:  # a campaign built outside the ORM hook (old data): its own copy
        copy = {"headline": campaign.headline, "body": campaign.body_for(current_app.config["PUBLICATION_NAME"]),
                "button_label": campaign.button_label, "thank_you": campaign.thank_you}
    else:
        copy = resolve_copy(campaign, variant, locale)
    default_frequency = (variant.default_frequency if variant is not None else None) or campaign.default_frequency
    return {
        "slug": campaign.slug,
        "variant": variant.key if variant is not None else CONTROL_KEY,
        **copy,
        "currency": currency,
        "currencies": currencies,
        "default_frequency": default_frequency.value,
        "presets": presets,
        "placement": ((variant.placement if variant is not None else None) or campaign.placement).value,
        "after_paragraph": (variant.after_paragraph if variant is not None else None) or campaign.after_paragraph,
    }


def showing_now(now: datetime | None = None) -> list[Campaign]:
    """Active campaigns within their schedule (``starts_at <= now < ends_at``, open ends allowed), highest
    priority first, then the newest; with their variants and translations loaded in two more queries."""
    now = now or now_utc()
    return list(db.session.scalars(
        select(Campaign)
        .where(Campaign.active.is_(True),
               or_(Campaign.starts_at.is_(None), Campaign.starts_at <= now),
               or_(Campaign.ends_at.is_(None), Campaign.ends_at > now))
        .options(selectinload(Campaign.variants).selectinload(CampaignVariant.translations))
        .order_by(Campaign.priority.desc(), Campaign.created_at.desc(), Campaign.id.desc())
    ))


def _whole_or_exact(money: Money, locale: str) -> str:
    """``€8,420`` rather than ``€8,420.00`` for a progress label; an amount with cents keeps them."""
    if money.amount % 10**money.exponent:
        return money.format(locale)
    babel_locale = Locale.parse(locale)
    pattern = re.sub(r"\.0+", "", babel_locale.currency_formats["standard"].pattern)
    return format_currency(money.as_decimal(), money.currency, format=pattern, locale=babel_locale,
                           currency_digits=False)


def labels_for(locale: str) -> dict[str, str]:
    """The embed's words for ``locale``: from the catalogues for the languages we translate, else UI_LABELS."""
    language = primary_language(locale)
    if language in LANGUAGES:
        with force_locale(language):
            return {key: gettext(message) for key, message in UI_LABELS["en"].items()}
    return UI_LABELS.get(language, UI_LABELS["en"])


def goal_view(campaign: Campaign, locale: str, now: datetime) -> dict | None:
    """The goal's progress bar data, its label formatted for ``locale`` (``€8,420 of €10,000 this month``)."""
    progress = goals.progress(campaign, now)
    if progress is None:
        return None
    phrase = labels_for(locale)["goal_month" if progress.period is GoalPeriod.MONTH else "goal_campaign"]
    return {
        "raised": progress.raised.amount,
        "goal": progress.goal.amount,
        "currency": progress.goal.currency,
        "percent": progress.percent,
        "period": progress.period.value,
        "label": phrase.format(raised=_whole_or_exact(progress.raised, locale),
                               goal=_whole_or_exact(progress.goal, locale)),
    }


def embed_campaigns(locale: str, currency: str | None = None, now: datetime | None = None) -> dict:
    """What the embed script needs to choose, place and show an ask on any page in ``locale``: every campaign
    showing now with its rules, placement, cap, goal and active variants (share and resolved copy). Nothing
    about the reader: the same answer for everyone, so that caches can serve it."""
    now = now or now_utc()
    if currency is not None and currency not in current_app.config["CURRENCIES"]:
        raise BadEmbedRequest(f"currency must be one of {', '.join(current_app.config['CURRENCIES'])}.")
    campaigns = []
    for campaign in showing_now(now):
        shares = experiments.allocation(campaign)
        variants = []
        for variant in campaign.active_variants:
            if shares.get(variant.key, 0) <= 0:
                continue  # a variant no reader is sent to need not travel
            ask = ask_view(campaign, locale, currency, variant)
            variants.append({
                "key": variant.key, "share": shares[variant.key],
                **{k: ask[k] for k in ("headline", "body", "button_label", "thank_you", "currency",
                                       "default_frequency", "presets", "placement", "after_paragraph")},
            })
        if not variants:
            continue
        cap = ({"views": campaign.cap_views, "days": campaign.cap_days}
               if campaign.cap_views and campaign.cap_days else None)
        campaigns.append({
            "slug": campaign.slug,
            "priority": campaign.priority,
            "rules": {
                "sections": list(campaign.sections or []),
                "url_patterns": list(campaign.url_patterns or []),
                "languages": [primary_language(language) for language in campaign.languages or []],
                "hide_from_supporters": campaign.hide_from_supporters,
            },
            "cap": cap,
            "goal": goal_view(campaign, locale, now),
            "variants": variants,
        })
    return {
        "locale": locale,
        "donate_url": f"{current_app.config['PUBLIC_URL']}/donate",
        "labels": {k: v for k, v in labels_for(locale).items() if not k.startswith("goal_")},
        "campaigns": campaigns,
    }
