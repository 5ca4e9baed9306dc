"""The ask wherever it appears: the demo article, the embed script, the iframe, the HTML fragment, the JSON."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from ..checkout.validation import clean_article_url
from ..web import request_locale
from . import operations

bp = Blueprint("campaigns", __name__, static_folder="static")


def _article_url() -> str | None:
    try:
        return clean_article_url(request.args.get("article_url"))
    except ValueError:
        return None


def _render_ask(slug: str, template: str):
    campaign = operations.get_active_or_404(slug)
    ask = operations.ask_view(campaign, request_locale(), request.args.get("currency"))
    return render_template(template, ask=ask, article_url=_article_url(),
                           donate_url=f"{current_app.config['PUBLIC_URL']}/donate")


@bp.get("/")
def article():
    """The demo: an article of a fictional publication, with the ask embedded as a publisher would."""
    return render_template("campaigns/article.html", slug=operations.DEFAULT_SLUG)


@lru_cache(maxsize=1)
def _embed_script() -> bytes:
    # Read once per process: this runs on every article view of every publisher page.
    return (Path(bp.static_folder) / "cta.js").read_bytes()


@bp.get("/embed/v1/cta.js")
def embed_script():
    response = Response(_embed_script(), mimetype="text/javascript")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script, like any CDN file
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/embed/cta/<slug>.html")
def embed_fragment(slug: str):
    """A server-side fragment for CMSs that include HTML; also what cta.js puts into its Shadow DOM."""
    thanked = request.args.get("thanks") == "1"  # cta.js asks so for a reader who has given
    return _render_ask(slug, "campaigns/thanks_fragment.html" if thanked else "campaigns/fragment.html")


@bp.get("/embed/cta/<slug>")
def embed_frame(slug: str):
    body = _render_ask(slug, "campaigns/frame.html")
    ancestors = " ".join(["'self'", *current_app.config["ALLOWED_ORIGINS"]])
    return body, 200, {"Content-Security-Policy": f"frame-ancestors {ancestors}"}


@bp.get("/api/v1/campaigns/<slug>")
def api_campaign(slug: str):
    campaign = operations.get_active(slug)
    if campaign is None:
        return jsonify(error="No active campaign has this slug."), 404
    ask = operations.ask_view(campaign, request_locale(), request.args.get("currency"))
    ask["donate_url"] = f"{current_app.config['PUBLIC_URL']}/donate?{urlencode({'campaign': campaign.slug})}"
    return jsonify(ask)
