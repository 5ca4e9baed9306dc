"""The ask wherever it appears: the demo article, the embed script and the campaigns it chooses from, the
iframe, the HTML fragment, the JSON."""
from __future__ import annotations

import hashlib
import json
import math
import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, make_response, render_template, request, url_for

from ..checkout.validation import clean_article_url
from ..security.headers import allow_framing_by
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
    response = make_response(render_template(template, ask=ask, article_url=_article_url(),
                                             donate_url=f"{current_app.config['PUBLIC_URL']}/donate"))
    response.vary.add("Accept-Language")  # without ?locale=, the reader's browser picks the language
    return response


@bp.get("/")
def article():
    """The demo: an article of a fictional publication, with the ask embedded as a publisher would."""
    return render_template("campaigns/article.html", slug=operations.DEFAULT_SLUG)


@lru_cache(maxsize=1)
def _embed_script() -> tuple[bytes, str]:
    # Read once per process: this runs on every article view of every publisher page.
    script = (Path(bp.static_folder) / "cta.js").read_bytes()
    return script, hashlib.sha256(script).hexdigest()[:16]


@bp.app_template_global()
def embed_script_url(external: bool = False) -> str:
    """The embed script's versioned URL (``?v=<content hash>``): cached for a year by browsers and CDNs,
    and a new URL as soon as the script changes, so a deploy needs no purge."""
    return url_for("campaigns.embed_script", v=_embed_script()[1], _external=external)


@bp.get("/embed/v1/cta.js")
def embed_script():
    script, version = _embed_script()
    response = Response(script, mimetype="text/javascript")
    response.cache_control.public = True
    if request.args.get("v") == version:
        # This URL only ever names these bytes.
        response.cache_control.max_age = 31536000
        response.cache_control.immutable = True
    else:
        # The plain URL (tags pasted into a CMS years ago) or an old version: revalidated every few minutes.
        response.cache_control.max_age = 300
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script, like any CDN file
    response.set_etag(version)
    return response.make_conditional(request)


#: Per process: (app id, locale, currency) -> (expires at, body, etag). campaigns.json is asked for on every
#: article view; a few seconds of reuse spares the database nearly all of them.
_embed_cache: dict[tuple[int, str, str | None], tuple[float, bytes, str]] = {}


def cached_campaigns_json(app, locale: str, currency: str | None) -> tuple[bytes, str] | None:
    """The body and ETag this process keeps for (locale, currency), while they are fresh; else None.

    Read by this view and by the middleware that answers campaigns.json before Flask (embed_endpoint.py), so
    both serve the same bytes for at most EMBED_CACHE_SECONDS after the database said so."""
    cached = _embed_cache.get((id(app), locale, currency))
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    return None


def campaigns_cache_control(app) -> str:
    """campaigns.json's Cache-Control: browsers and CDNs keep it as long as each process does
    (EMBED_CACHE_SECONDS), then revalidate with the ETag, so a staff edit shows everywhere within that time,
    also to a reader (or the editor) who reloads the article. A fixed minute here kept the old ask on reload."""
    return f"public, max-age={math.ceil(app.config['EMBED_CACHE_SECONDS'])}"


def _campaigns_json(locale: str, currency: str | None) -> tuple[bytes, str]:
    seconds = current_app.config["EMBED_CACHE_SECONDS"]
    app = current_app._get_current_object()
    cached = cached_campaigns_json(app, locale, currency)
    if cached is not None:
        return cached
    key = (id(app), locale, currency)
    now = time.monotonic()
    body = json.dumps(operations.embed_campaigns(locale, currency), separators=(",", ":"),
                      ensure_ascii=False).encode()
    etag = hashlib.sha256(body).hexdigest()[:32]
    if seconds > 0:
        if len(_embed_cache) > 512:  # locales x currencies bound it already; this keeps stale keys from piling up
            _embed_cache.clear()
        _embed_cache[key] = (now + seconds, body, etag)
    return body, etag


@bp.get("/embed/v1/campaigns.json")
def embed_campaigns():
    """The campaigns showing now, for the embed script of any page in ``locale``: public and the same for every
    reader, so browsers, a CDN or nginx may keep it for a minute."""
    try:
        locale = operations.embed_locale(request.args.get("locale"))
        currency = request.args.get("currency") or None
        body, etag = _campaigns_json(locale, currency.upper() if currency else None)
    except operations.BadEmbedRequest as exc:
        response = jsonify(error=str(exc))
        response.status_code = 400
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response
    # Headers as plain strings and the conditional check by hand: werkzeug's helpers for both cost more than
    # the rest of this view, which runs on every article view that no CDN answers.
    headers = {"Cache-Control": campaigns_cache_control(current_app), "ETag": f'"{etag}"',
               "Access-Control-Allow-Origin": "*"}
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/json", headers=headers)


@bp.get("/embed/cta/<slug>.html")
def embed_fragment(slug: str):
    """A server-side fragment for CMSs that include HTML; also what cta.js puts into its Shadow DOM."""
    thanked = request.args.get("thanks") == "1"  # cta.js asks so for a reader who has given
    return _render_ask(slug, "campaigns/thanks_fragment.html" if thanked else "campaigns/fragment.html")


@bp.get("/embed/cta/<slug>")
def embed_frame(slug: str):
    body = _render_ask(slug, "campaigns/frame.html")
    # The publisher's sites only (issue 7); none configured: nobody.
    allow_framing_by(current_app.config["ALLOWED_ORIGINS"])
    return body


@bp.get("/api/v1/campaigns/<slug>")
def api_campaign(slug: str):
    campaign = operations.get_active(slug)
    if campaign is None:
        return jsonify(error="No active campaign has this slug."), 404
    ask = operations.ask_view(campaign, request_locale(), request.args.get("currency"))
    ask["donate_url"] = f"{current_app.config['PUBLIC_URL']}/donate?{urlencode({'campaign': campaign.slug})}"
    return jsonify(ask)
