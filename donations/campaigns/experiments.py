"""A/B tests of the ask: how readers are split between a campaign's variants."""
from __future__ import annotations

from .models import Campaign


def allocation(campaign: Campaign) -> dict[str, float]:
    """Each active variant's share of readers (summing to 1), by weight. The embed picks a variant from
    these shares with the reader's stable per-browser random number."""
    variants = [variant for variant in campaign.active_variants if variant.weight > 0]
    total = sum(variant.weight for variant in variants)
    return {variant.key: variant.weight / total for variant in variants} if total else {}
