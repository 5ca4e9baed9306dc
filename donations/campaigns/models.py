"""The ask: copy and preset amounts as data, editable without a deploy; where it shows, its A/B variants, and
what readers did with it (impressions and clicks counted per campaign, variant, article and day)."""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, event, false, insert, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import enum_column, now_utc
from ..extensions import db
from ..ledger.models import Frequency

#: Lists of rules; JSONB on PostgreSQL, whose plain ``json`` cannot compare its ``'[]'`` default.
JSON_LIST = JSON().with_variant(JSONB(), "postgresql")

#: The variant every campaign starts with; its copy is the campaign's own.
CONTROL_KEY = "a"


class Placement(enum.StrEnum):
    #: Where the tag stands, or after the Nth paragraph of the article body (``after_paragraph``).
    INLINE = "inline"
    #: A bar fixed to the bottom of the window.
    BANNER = "banner"
    #: A dialog over the page, dismissible (button or Escape).
    OVERLAY = "overlay"


class Allocation(enum.StrEnum):
    """How readers are split between a campaign's variants."""

    #: By each variant's weight, from a stable per-browser random id.
    SPLIT = "split"
    #: Thompson sampling towards the variant likelier to convert, each variant keeping ``allocation_floor`` %.
    THOMPSON = "thompson"


class GoalPeriod(enum.StrEnum):
    #: Gifts since the campaign started (its ``starts_at``, or its creation).
    CAMPAIGN = "campaign"
    #: Gifts this calendar month (UTC).
    MONTH = "month"


class Campaign(db.Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    headline: Mapped[str] = mapped_column(String(200))
    #: May contain ``{publication}``, replaced by PUBLICATION_NAME when shown.
    body: Mapped[str] = mapped_column(Text)
    button_label: Mapped[str] = mapped_column(String(80))
    #: Shown in place of the ask to a reader who has given from this browser.
    thank_you: Mapped[str] = mapped_column(
        Text, server_default="Thank you for supporting our work. Readers like you keep it going."
    )
    #: ``{frequency: {currency: [minor units, ...]}}``; a frequency's presets are never derived from another's.
    presets: Mapped[dict[str, dict[str, list[int]]]] = mapped_column(JSON)
    default_frequency: Mapped[Frequency] = mapped_column(enum_column(Frequency, "frequency"))
    default_currency: Mapped[str] = mapped_column(String(3), default="EUR", server_default="EUR")
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: The language of the copy above (a locale such as ``en`` or ``de``); other languages are translations.
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")

    # -- schedule and goal ----------------------------------------------------------------------------
    #: Shown from/until (UTC); None = open-ended.
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    #: Among several campaigns that match a page, the highest priority shows (then the newest).
    priority: Mapped[int] = mapped_column(default=0, server_default="0")
    #: A progress bar: gifts in ``goal_currency`` (minor units) towards ``goal_amount`` per ``goal_period``.
    goal_amount: Mapped[int | None] = mapped_column(BigInteger)  # a big publisher's yearly goal passes 2**31 cents
    goal_currency: Mapped[str | None] = mapped_column(String(3))
    goal_period: Mapped[GoalPeriod] = mapped_column(
        enum_column(GoalPeriod, "goal_period"), default=GoalPeriod.MONTH, server_default=GoalPeriod.MONTH.value
    )

    # -- where it shows -------------------------------------------------------------------------------
    #: Article sections (``<meta property="article:section">``) it shows on; empty = every section.
    sections: Mapped[list[str]] = mapped_column(JSON_LIST, default=list, server_default="[]")
    #: URL path patterns (``fnmatch`` style, e.g. ``/politics/*``) it shows on; empty = every URL.
    url_patterns: Mapped[list[str]] = mapped_column(JSON_LIST, default=list, server_default="[]")
    #: Page languages (primary subtag, e.g. ``de``) it shows on; empty = every language.
    languages: Mapped[list[str]] = mapped_column(JSON_LIST, default=list, server_default="[]")
    #: Not shown to readers who have given from this browser.
    hide_from_supporters: Mapped[bool] = mapped_column(default=False, server_default=false())
    placement: Mapped[Placement] = mapped_column(
        enum_column(Placement, "placement"), default=Placement.INLINE, server_default=Placement.INLINE.value
    )
    #: Inline asks: after this paragraph of the article body (the tag's ``data-selector``); None = at the tag.
    after_paragraph: Mapped[int | None]
    #: Frequency cap per reader, kept in the reader's browser: at most ``cap_views`` showings per ``cap_days``;
    #: None = no cap.
    cap_views: Mapped[int | None]
    cap_days: Mapped[int | None]

    # -- A/B ------------------------------------------------------------------------------------------
    allocation: Mapped[Allocation] = mapped_column(
        enum_column(Allocation, "allocation"), default=Allocation.SPLIT, server_default=Allocation.SPLIT.value
    )
    #: Under Thompson sampling, the share (percent) each active variant keeps at least.
    allocation_floor: Mapped[int] = mapped_column(default=10, server_default="10")

    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc, onupdate=now_utc)

    variants: Mapped[list[CampaignVariant]] = relationship(
        back_populates="campaign", order_by="CampaignVariant.id", cascade="all, delete-orphan"
    )

    def body_for(self, publication: str) -> str:
        return self.body.replace("{publication}", publication)

    def preset_amounts(self, frequency: Frequency | str, currency: str) -> list[int]:
        return list(self.presets.get(str(frequency), {}).get(currency, []))

    @property
    def active_variants(self) -> list[CampaignVariant]:
        return [variant for variant in self.variants if variant.active]

    def variant(self, key: str | None) -> CampaignVariant | None:
        return next((variant for variant in self.variants if variant.key == key), None)


@event.listens_for(Campaign, "after_insert")
def _control_variant(mapper, connection, campaign: Campaign) -> None:
    """Every campaign has its control variant from the start, so every impression and gift names a variant."""
    if campaign.__dict__.get("variants"):
        return  # created with its variants
    connection.execute(insert(CampaignVariant.__table__).values(
        campaign_id=campaign.id, key=CONTROL_KEY, name="Control", weight=1, active=True, created_at=now_utc(),
    ))


class CampaignVariant(db.Model):
    """One version of a campaign's ask in an A/B test. Fields left empty are the campaign's own."""

    __tablename__ = "campaign_variants"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    #: Short and stable (``a``, ``b``, …): it travels in the embed's counts and in the donation link.
    key: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    #: Share of readers under ``Allocation.SPLIT``, relative to the other active variants' weights.
    weight: Mapped[int] = mapped_column(default=1, server_default="1")
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    headline: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    button_label: Mapped[str | None] = mapped_column(String(80))
    presets: Mapped[dict[str, dict[str, list[int]]] | None] = mapped_column(JSON)
    default_frequency: Mapped[Frequency | None] = mapped_column(enum_column(Frequency, "frequency"))
    placement: Mapped[Placement | None] = mapped_column(enum_column(Placement, "placement"))
    after_paragraph: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    campaign: Mapped[Campaign] = relationship(back_populates="variants")
    translations: Mapped[list[CampaignTranslation]] = relationship(
        back_populates="variant", cascade="all, delete-orphan"
    )


class CampaignTranslation(db.Model):
    """A variant's copy in another language than the campaign's. Empty fields fall back to the control's
    translation in that language, then to the campaign's own language."""

    __tablename__ = "campaign_translations"
    __table_args__ = (UniqueConstraint("variant_id", "locale"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("campaign_variants.id", ondelete="CASCADE"))
    #: A Babel locale identifier (``de``, ``fr``, ``de_CH``).
    locale: Mapped[str] = mapped_column(String(16))
    headline: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    button_label: Mapped[str | None] = mapped_column(String(80))
    thank_you: Mapped[str | None] = mapped_column(Text)

    variant: Mapped[CampaignVariant] = relationship(back_populates="translations")


class Article(db.Model):
    """A publisher's page the ask was seen on or a gift came from, by its normalised URL
    (``donations.campaigns.articles.normalise_url``). Section, author and title come from the page's
    ``<meta>`` tags, as last reported."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    section: Mapped[str | None] = mapped_column(String(100), index=True)
    author: Mapped[str | None] = mapped_column(String(200), index=True)
    title: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class AskCount(db.Model):
    """Impressions and clicks, aggregated per day, campaign, variant and article: no row per view, no reader."""

    __tablename__ = "ask_counts"
    __table_args__ = (Index(None, "campaign_id", "day"),)

    day: Mapped[date] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("campaign_variants.id", ondelete="CASCADE"),
                                            primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), primary_key=True, index=True)
    impressions: Mapped[int] = mapped_column(default=0, server_default="0")
    clicks: Mapped[int] = mapped_column(default=0, server_default="0")
