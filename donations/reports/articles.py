"""Conversion per article: the ask's impressions and clicks (``ask_counts``) beside the gifts it brought
(donations whose checkout started from the ask on that article), for a range of UTC days.

A gift is a donation with an attempt (a checkout the reader started; renewals of a recurring gift are not new
gifts) and an article, paid within the range, still standing (succeeded, partially refunded or disputed).
Money is summed per currency and never across currencies. Counting and summing happen in SQL; a page of
rows is read at a time, so a range with a hundred thousand articles stays quick.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Iterator

from sqlalchemy import Float, case, cast, func, or_, select

from ..campaigns.models import Article, AskCount
from .replica import reads
from ..ledger.models import Donation, DonationStatus

#: What counts as money raised: refunded in full is no longer a gift; a disputed gift is until it is lost.
GIFT_STATUSES = (DonationStatus.SUCCEEDED, DonationStatus.PARTIALLY_REFUNDED, DonationStatus.DISPUTED)
SORTS = ("impressions", "clicks", "gifts", "conversion", "money")
PAGE = 100


@dataclass(frozen=True)
class ArticleFilters:
    """The report's choices: UTC days ``start``..``end`` (both included), and optional narrowing."""

    start: date
    end: date
    campaign_id: int | None = None
    section: str | None = None
    author: str | None = None
    sort: str = "impressions"
    #: The currency "money" sorts by (amounts in different currencies are never compared).
    currency: str = "EUR"

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, timezone.utc)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, timezone.utc)


@dataclass
class ArticleRow:
    id: int
    url: str
    title: str | None
    section: str | None
    author: str | None
    impressions: int
    clicks: int
    gifts: int
    #: {currency: minor units}
    raised: dict[str, int]

    @property
    def conversion(self) -> Decimal | None:
        """Gifts per impression; None when the ask was not seen (a gift from a page that counted nothing)."""
        return Decimal(self.gifts) / Decimal(self.impressions) if self.impressions else None


def _counts(filters: ArticleFilters):
    """Impressions and clicks per article in the range (the ask_counts (campaign_id, day) index serves it)."""
    where = [AskCount.day >= filters.start, AskCount.day <= filters.end]
    if filters.campaign_id is not None:
        where.append(AskCount.campaign_id == filters.campaign_id)
    return (select(AskCount.article_id.label("article_id"),
                   func.sum(AskCount.impressions).label("impressions"), func.sum(AskCount.clicks).label("clicks"))
            .where(*where).group_by(AskCount.article_id).subquery("counts"))


def _gift_filter(filters: ArticleFilters) -> list:
    where = [Donation.attempt_id.is_not(None), Donation.article_id.is_not(None), Donation.status.in_(GIFT_STATUSES),
             Donation.paid_at >= filters.since, Donation.paid_at < filters.until]
    if filters.campaign_id is not None:
        where.append(Donation.campaign_id == filters.campaign_id)
    return where


def _gifts(filters: ArticleFilters):
    """Gifts per article, and the money in ``filters.currency`` (only for sorting by money)."""
    in_currency = func.sum(func.coalesce(
        case((Donation.currency == filters.currency, Donation.amount - Donation.amount_refunded), else_=0), 0))
    return (select(Donation.article_id.label("article_id"), func.count().label("gifts"),
                   in_currency.label("money"))
            .where(*_gift_filter(filters)).group_by(Donation.article_id).subquery("gifts"))


def _article_where(filters: ArticleFilters, counts, gifts) -> list:
    where = [or_(counts.c.article_id.is_not(None), gifts.c.article_id.is_not(None))]
    if filters.section:
        where.append(Article.section == filters.section)
    if filters.author:
        where.append(Article.author == filters.author)
    return where


def _rows_query(filters: ArticleFilters):
    counts, gifts = _counts(filters), _gifts(filters)
    impressions = func.coalesce(counts.c.impressions, 0)
    n_gifts = func.coalesce(gifts.c.gifts, 0)
    order = {
        "impressions": impressions,
        "clicks": func.coalesce(counts.c.clicks, 0),
        "gifts": n_gifts,
        # Gifts per impression as a float for ordering only; the page shows the exact ratio.
        "conversion": cast(n_gifts, Float) / func.nullif(impressions, 0),
        "money": func.coalesce(gifts.c.money, 0),
    }[filters.sort if filters.sort in SORTS else "impressions"]
    return (
        select(Article.id, Article.url, Article.title, Article.section, Article.author, impressions.label("impressions"),
               func.coalesce(counts.c.clicks, 0).label("clicks"), n_gifts.label("gifts"))
        .outerjoin(counts, counts.c.article_id == Article.id)
        .outerjoin(gifts, gifts.c.article_id == Article.id)
        .where(*_article_where(filters, counts, gifts))
        # NULLS LAST on both databases: no conversion rate (no impressions) sorts after every rate.
        .order_by(order.is_(None), order.desc(), Article.id)
    )


def _raised(article_ids: list[int], filters: ArticleFilters) -> dict[int, dict[str, int]]:
    """Money per article and currency (what was paid less what was refunded), for these articles only."""
    raised: dict[int, dict[str, int]] = {}
    if not article_ids:
        return raised
    rows = reads().execute(
        select(Donation.article_id, Donation.currency, func.sum(Donation.amount - Donation.amount_refunded))
        .where(*_gift_filter(filters), Donation.article_id.in_(article_ids))
        .group_by(Donation.article_id, Donation.currency))
    for article_id, currency, amount in rows:
        raised.setdefault(article_id, {})[currency] = int(amount)
    return raised


def _build(rows, filters: ArticleFilters) -> list[ArticleRow]:
    rows = list(rows)
    raised = _raised([row.id for row in rows], filters)
    return [ArticleRow(row.id, row.url, row.title, row.section, row.author, int(row.impressions), int(row.clicks),
                       int(row.gifts), raised.get(row.id, {})) for row in rows]


def article_page(filters: ArticleFilters, page: int = 1, per_page: int | None = None) -> tuple[list[ArticleRow], bool]:
    """One page of articles (PAGE unless ``per_page``) in the report's order, and whether another page follows."""
    per_page = per_page or PAGE
    rows = reads().execute(_rows_query(filters).limit(per_page + 1).offset((page - 1) * per_page)).all()
    return _build(rows[:per_page], filters), len(rows) > per_page


def all_articles(filters: ArticleFilters, chunk: int = 1000) -> Iterator[ArticleRow]:
    """Every article of the report, in its order, a chunk at a time (the CSV)."""
    page = 1
    while True:
        rows, more = article_page(filters, page, chunk)
        yield from rows
        if not more:
            return
        page += 1


@dataclass
class GroupTotal:
    name: str | None
    impressions: int
    clicks: int
    gifts: int
    raised: dict[str, int]

    @property
    def conversion(self) -> Decimal | None:
        return Decimal(self.gifts) / Decimal(self.impressions) if self.impressions else None


def totals_by(filters: ArticleFilters, field: str, limit: int = 50) -> list[GroupTotal]:
    """Impressions, clicks, gifts and money per section or author (``field``), most impressions first;
    articles without one are grouped under None."""
    column = getattr(Article, field)
    where = [column == getattr(filters, field)] if getattr(filters, field) else []
    count_where = [AskCount.day >= filters.start, AskCount.day <= filters.end]
    if filters.campaign_id is not None:
        count_where.append(AskCount.campaign_id == filters.campaign_id)
    groups: dict[str | None, GroupTotal] = {}
    for name, impressions, clicks in reads().execute(
            select(column, func.sum(AskCount.impressions), func.sum(AskCount.clicks))
            .join(Article, Article.id == AskCount.article_id).where(*count_where, *where).group_by(column)):
        groups[name] = GroupTotal(name, int(impressions), int(clicks), 0, {})
    for name, currency, gifts, amount in reads().execute(
            select(column, Donation.currency, func.count(), func.sum(Donation.amount - Donation.amount_refunded))
            .join(Article, Article.id == Donation.article_id).where(*_gift_filter(filters), *where)
            .group_by(column, Donation.currency)):
        group = groups.setdefault(name, GroupTotal(name, 0, 0, 0, {}))
        group.gifts += int(gifts)
        group.raised[currency] = int(amount)
    ordered = sorted(groups.values(), key=lambda g: (-g.impressions, -g.gifts, g.name is None, g.name or ""))
    return ordered[:limit]


def sections_and_authors() -> tuple[list[str], list[str]]:
    """The choices of the filters: every section and author an article has reported (distinct, sorted)."""
    sections = reads().scalars(select(Article.section).where(Article.section.is_not(None)).distinct()
                                  .order_by(Article.section).limit(500)).all()
    authors = reads().scalars(select(Article.author).where(Article.author.is_not(None)).distinct()
                                 .order_by(Article.author).limit(1000)).all()
    return list(sections), list(authors)


def report_currencies(filters: ArticleFilters, accepted: list[str]) -> list[str]:
    """The accepted currencies, then any other the range's gifts were paid in (one accepted earlier)."""
    found = reads().scalars(select(Donation.currency).where(*_gift_filter(filters)).distinct()).all()
    return list(accepted) + sorted(set(found) - set(accepted))


def csv_columns(currencies: list[str]) -> list[str]:
    """The CSV's header: one money column per accepted currency, so that amounts are never added across them."""
    return ["article_url", "title", "section", "author", "impressions", "clicks", "gifts", "conversion_rate",
            *(f"raised_{code}" for code in currencies)]


def csv_rows(filters: ArticleFilters, currencies: list[str]) -> Iterator[list]:
    """The report's rows as typed cells (for donations.reports.registry.csv_cell), in the page's order."""
    from ..money import Money

    for row in all_articles(filters):
        rate = row.conversion
        yield [row.url, row.title, row.section, row.author, row.impressions, row.clicks, row.gifts,
               None if rate is None else rate.quantize(Decimal("0.000001")),
               *(Money(row.raised[code], code) if code in row.raised else None for code in currencies)]

