"""/staff/articles: which articles the ask converts on — impressions, clicks, gifts, conversion and money
per article, section and author for a range of days, with a chart and a CSV of the same rows."""
from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta, timezone

from babel.numbers import format_percent
from flask import Response, abort, current_app, render_template, request, stream_with_context
from sqlalchemy import select

from ..campaigns.models import Campaign
from ..extensions import db
from ..money import Money
from ..reports import articles as report
from ..reports.registry import csv_cell
from . import auth, charts
from .views import bp

#: The range shown when none is chosen: the last 30 days, today included.
DEFAULT_DAYS = 30
#: Articles in the chart.
CHART_TOP = 10


def _day(name: str, default: date) -> date:
    raw = request.args.get(name) or ""
    if not raw:
        return default
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        abort(400, f"{name.capitalize()}: choose a day as YYYY-MM-DD.")


def _filters() -> report.ArticleFilters:
    """The report's choices from the query string; a choice that makes no sense is a 400 that says why."""
    today = datetime.now(timezone.utc).date()
    end = _day("to", today)
    start = _day("from", end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        abort(400, "The first day is after the last day.")
    campaign_id = None
    if request.args.get("campaign"):
        raw = request.args["campaign"]
        campaign_id = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None  # str.isdigit() takes "²"
        if campaign_id is None or db.session.get(Campaign, campaign_id) is None:
            abort(400, "No campaign has this id.")
    sort = request.args.get("sort") or "impressions"
    if sort not in report.SORTS:
        abort(400, f"Sort by one of: {', '.join(report.SORTS)}.")
    currencies = current_app.config["CURRENCIES"]
    currency = request.args.get("currency") or currencies[0]
    if currency not in currencies:
        abort(400, f"Currency: one of {', '.join(currencies)}.")
    return report.ArticleFilters(start=start, end=end, campaign_id=campaign_id,
                                 section=(request.args.get("section") or "").strip()[:100] or None,
                                 author=(request.args.get("author") or "").strip()[:200] or None,
                                 sort=sort, currency=currency)


def percent(rate) -> str:
    """A conversion rate as a percentage with Babel (two decimals: asks convert well under one per cent)."""
    return "—" if rate is None else format_percent(rate, "#,##0.00%", locale="en")


def _page_number() -> int:
    raw = request.args.get("page") or "1"
    return max(1, min(int(raw), 100_000)) if re.fullmatch(r"[0-9]{1,7}", raw) else 1


@bp.get("/articles")
@auth.require("articles.read")
def articles():
    """The report, or with ``format=csv`` the same rows (every page) as a CSV download."""
    filters = _filters()
    if request.args.get("format") == "csv":
        return _csv(filters)
    page = _page_number()
    rows, more = report.article_page(filters, page)
    top = rows[:CHART_TOP] if page == 1 else report.article_page(filters, 1, CHART_TOP)[0]
    label = (lambda row: (row.title or row.url.split("://", 1)[-1])[:18])
    chart = charts.bars(f"Top articles by {filters.sort}: impressions and clicks, "
                        f"{filters.start.isoformat()} to {filters.end.isoformat()}",
                        [(label(row), row.impressions) for row in top],
                        second=[(label(row), row.clicks) for row in top], legend=("impressions", "clicks"))
    sections, authors = report.sections_and_authors()
    campaigns = db.session.scalars(select(Campaign).order_by(Campaign.name)).all()
    return render_template(
        "staff/articles.html", filters=filters, rows=rows, page=page, more=more, chart=chart,
        by_section=report.totals_by(filters, "section"), by_author=report.totals_by(filters, "author"),
        sections=sections, authors=authors, campaigns=campaigns, sorts=report.SORTS, percent=percent, Money=Money,
    )


def _csv(filters: report.ArticleFilters) -> Response:
    currencies = report.report_currencies(filters, current_app.config["CURRENCIES"])
    auth.audit("export", "articles", None, format="csv", start=filters.start.isoformat(),
               end=filters.end.isoformat())
    db.session.commit()

    def chunks():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(report.csv_columns(currencies))
        for row in report.csv_rows(filters, currencies):
            writer.writerow([csv_cell(value) for value in row])  # text defused against formula injection
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"articles-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
    return Response(stream_with_context(chunks()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
