"""POST /embed/v1/count: the embed's impressions and clicks.

It runs on every article view of every publisher page, so it does as little as it can: it is answered by a
small WSGI middleware in front of Flask (no session, no CSRF, no database); the event is checked, its URL
normalised, and it is added to this process's buffer (donations.campaigns.counting), which a background
thread writes in batches.
"""
from __future__ import annotations

import json
import unicodedata
from functools import lru_cache

from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from ..extensions import db
from ..security.headers import static_headers
from . import counting
from .articles import normalise_url

#: Larger than any honest event (a 2,000-character URL, a title and a few short fields).
MAX_BODY = 8 * 1024
KINDS = ("impression", "click")
#: Longest campaign slug and variant key (as the columns hold them).
MAX_SLUG, MAX_KEY = 64, 16
#: The article's meta fields, cut to what the articles table holds.
META_LENGTHS = {"section": 100, "author": 200, "title": 300}


#: An article is viewed many times: its URL is normalised once per process (most of this route's own cost).
_normalised = lru_cache(maxsize=4096)(normalise_url)


class BadEvent(ValueError):
    pass


def _short(payload: dict, name: str, limit: int) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise BadEvent(f"{name} must be a short text.")
    return value


def _meta(payload: dict, name: str) -> str | None:
    """An optional meta field: text on one line, whitespace collapsed, cut to the column."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadEvent(f"{name} must be text.")
    value = value[:2000]
    if not value.isprintable():  # rare: control characters (tabs, line ends, NUL) become spaces
        value = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in value)
    value = " ".join(value.split())
    return value[:META_LENGTHS[name]] or None


def parse_event(body: bytes) -> dict:
    """The event in a request body, checked and normalised; BadEvent says what is wrong."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadEvent("Send a JSON object.") from None
    if not isinstance(payload, dict):
        raise BadEvent("Send a JSON object.")
    if payload.get("type") not in KINDS:
        raise BadEvent("type must be impression or click.")
    url = payload.get("url")
    url = _normalised(url) if isinstance(url, str) else None
    if url is None:
        raise BadEvent("url must be an http or https address.")
    return {"kind": payload["type"], "campaign": _short(payload, "campaign", MAX_SLUG),
            "variant": _short(payload, "variant", MAX_KEY), "url": url,
            **{name: _meta(payload, name) for name in META_LENGTHS}}


class CountEndpoint:
    """WSGI middleware answering ``/embed/v1/count`` before Flask sees the request.

    Flask's per-request machinery (request context, session, Flask-Login, CSRF, the limiter, CORS, after-request
    hooks) costs more than this endpoint's own work, and the endpoint is called on every article view: measured
    under gunicorn, a no-op Flask route of the whole app reaches only about 0.6 of an empty Flask route's
    throughput, short of issue 7's 0.8. So the beacon is answered here, with werkzeug's own request parsing and
    the same security headers the app sets; every other path goes on to Flask unchanged.
    """

    PATH = "/embed/v1/count"
    HEADERS = [# The beacon's answer is never read; allowing any origin keeps a fetch() fallback quiet.
               ("Access-Control-Allow-Origin", "*"), ("Cache-Control", "no-store")]

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.headers = [*self.HEADERS, *static_headers(app.config)]
        # Pages of the publication only (its sites and the demo), so that nobody can fill the article report
        # with other sites' pages; with no ALLOWED_ORIGINS (a development setup) any page counts.
        origins = app.config["ALLOWED_ORIGINS"]
        self.origins = {_origin(normalise_url(o + "/")) for o in [*origins, app.config["PUBLIC_URL"]]
                        if normalise_url(o + "/")} if origins else None

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.PATH:
            return self.wsgi_app(environ, start_response)
        response = self.answer(Request(environ))
        response.headers.extend(self.headers)
        return response(environ, start_response)

    def answer(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": "POST, OPTIONS"})
        if request.method != "POST":
            return _error("Send the event with POST.", 405, Allow="POST, OPTIONS")
        # sendBeacon sends text/plain (a "simple" request without a CORS preflight), so the body is read as
        # it comes, whatever its content type.
        request.max_content_length = MAX_BODY
        try:
            event = parse_event(request.get_data(cache=False))
        except RequestEntityTooLarge:
            return _error("The event is too large.", 413)
        except BadEvent as exc:
            return _error(str(exc), 400)
        if self.origins is not None and _origin(event["url"]) not in self.origins:
            return _error("url must be a page of this publication (ALLOWED_ORIGINS).", 400)
        counting.record(**event)
        if self.app.config["COUNT_FLUSH_SECONDS"]:
            counting.ensure_flushing(self.app)
        else:  # tests and a development server: written before the answer
            with self.app.app_context():
                try:
                    counting.flush()
                except Exception:  # noqa: BLE001  (logged; the counts wait in the buffer for the next flush)
                    pass
                finally:
                    db.session.remove()
        return Response(status=204)


def _origin(url: str) -> str:
    """``https://news.example`` of a normalised URL."""
    return url[:url.index("/", url.index("//") + 2)]


def _error(message: str, status: int, **headers) -> Response:
    return Response(json.dumps({"error": message}), status=status, mimetype="application/json", headers=headers)
