"""Reading the ask for display: copy, presets and formatted amounts."""
from __future__ import annotations

from flask import abort, current_app
from sqlalchemy import select

from ..extensions import db
from ..ledger.models import Frequency
from ..money import Money
from .models import Campaign

DEFAULT_SLUG = "default"


def get_active(slug: str) -> Campaign | None:
    if not isinstance(slug, str) or len(slug) > 64:
        return None
    return db.session.scalars(select(Campaign).where(Campaign.slug == slug, Campaign.active.is_(True))).one_or_none()


def get_active_or_404(slug: str) -> Campaign:
    campaign = get_active(slug)
    if campaign is None:
        abort(404)
    return campaign


def ask_view(campaign: Campaign, locale: str, currency: str | None = None) -> dict:
    """Everything an ask shows, with amounts formatted for ``locale``."""
    currencies = current_app.config["CURRENCIES"]
    currency = currency if currency in currencies else (
        campaign.default_currency if campaign.default_currency in currencies else currencies[0]
    )
    presets = {
        frequency.value: [
            {"amount": amount, "major": Money(amount, currency).major_str(), "label": Money(amount, currency).format(locale)}
            for amount in campaign.preset_amounts(frequency, currency)
        ]
        for frequency in Frequency
    }
    return {
        "slug": campaign.slug,
        "headline": campaign.headline,
        "body": campaign.body_for(current_app.config["PUBLICATION_NAME"]),
        "button_label": campaign.button_label,
        "thank_you": campaign.thank_you,
        "currency": currency,
        "currencies": currencies,
        "default_frequency": campaign.default_frequency.value,
        "presets": presets,
    }
