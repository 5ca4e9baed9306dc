"""GET /embed/v1/campaigns.json and GET /embed/v1/cta.js, answered before Flask when they can be.

Both are asked for on every article view of every publisher page that no CDN answers. A Flask view of this app
costs at least its "floor" (request context, session, Flask-Login, CSRF, the limiter, CORS, the after-request
hooks): measured under gunicorn about 0.6 of an empty Flask route's throughput, short of issue 7's 0.8 for
campaigns.json. So, as for the beacon (count_views.py), a small WSGI middleware answers the plain requests from
what this process already holds:

- cta.js: the script's bytes and hash, read once per process (``views._embed_script``);
- campaigns.json: the answer the Flask view keeps for EMBED_CACHE_SECONDS (``views.cached_campaigns_json``).
  Only a fresh entry is served; a miss, an expired entry, or EMBED_CACHE_SECONDS = 0 goes on to the Flask view,
  which reads the database and refills the entry. Nothing else is kept, so a staff edit shows on every host
  within EMBED_CACHE_SECONDS, as it did before this middleware (docs/deploy.md, "Several web hosts").

The answers are the Flask views' answers, byte for byte and header for header (tests/functional/
test_embed_endpoint.py compares them). Whatever this module does not fully understand goes on to Flask
unchanged: another method, a cookie (a signed-in staff member's session), a query that is not plain
``name=value`` pairs of letters, digits, ``_.-`` (percent-escapes, ``+``, a repeated name), a locale Babel does
not take, conditional headers other than If-None-Match, a Range request.
"""
from __future__ import annotations

import re
import time
from email.utils import formatdate

from flask import Flask
from werkzeug.http import is_resource_modified, parse_etags

from ..security.headers import static_headers
from . import operations, views

#: A query the middleware reads without decoding: ``name=value`` pairs of URL-safe characters only.
_PLAIN_QUERY = re.compile(r"(?:[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]*(?:&[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]*)*)?")
#: Request headers that make werkzeug's make_conditional do more than If-None-Match (ranges, dates, If-Match).
_OTHER_CONDITIONS = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH")


def _query(environ) -> dict[str, str] | None:
    """The query's arguments, or None when it is not plain enough to read without werkzeug."""
    query = environ.get("QUERY_STRING", "")
    if not query:
        return {}
    if not _PLAIN_QUERY.fullmatch(query):
        return None
    args: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name in args:  # werkzeug takes the first; rare enough to leave to it
            return None
        args[name] = value
    return args


class EmbedEndpoint:
    """WSGI middleware answering plain GETs of campaigns.json (from the process's fresh cache) and cta.js."""

    CAMPAIGNS = "/embed/v1/campaigns.json"
    SCRIPT = "/embed/v1/cta.js"

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        # What the app's after_request hook adds to every answer of these paths (no framing, not /account).
        self.security = static_headers(app.config)
        self.script, self.version = views._embed_script()
        self.script_etag = f'"{self.version}"'
        self._date: tuple[int, str] = (0, "")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path == self.CAMPAIGNS:
            answer = self.campaigns(environ)
        elif path == self.SCRIPT:
            answer = self.embed_script(environ)
        else:
            return self.wsgi_app(environ, start_response)
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body] if body else []

    def _plain_get(self, environ) -> dict[str, str] | None:
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("HTTP_COOKIE"):
            return None
        return _query(environ)

    def campaigns(self, environ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """What ``views.embed_campaigns`` answers, when this process holds a fresh answer; else None."""
        args = self._plain_get(environ)
        if args is None:
            return None
        try:
            locale = operations.embed_locale(args.get("locale"))
        except operations.BadEmbedRequest:
            return None  # the view's 400
        currency = args.get("currency") or None
        cached = views.cached_campaigns_json(self.app, locale, currency.upper() if currency else None)
        if cached is None:
            return None
        body, etag = cached
        headers = [("Cache-Control", views.campaigns_cache_control(self.app)), ("ETag", f'"{etag}"'),
                   ("Access-Control-Allow-Origin", "*")]
        if environ.get("HTTP_IF_NONE_MATCH") and parse_etags(environ["HTTP_IF_NONE_MATCH"]).contains_weak(etag):
            return "304 NOT MODIFIED", [*headers, *self.security], b""
        return "200 OK", [*headers, ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                          *self.security], body

    def embed_script(self, environ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """What ``views.embed_script`` answers (with werkzeug's make_conditional), for a plain GET."""
        args = self._plain_get(environ)
        if args is None or any(name in environ for name in _OTHER_CONDITIONS):
            return None
        cache_control = ("public, max-age=31536000, immutable" if args.get("v") == self.version
                         else "public, max-age=300")
        headers = [("Cache-Control", cache_control), ("Access-Control-Allow-Origin", "*"),
                   ("ETag", self.script_etag), ("Date", self._http_date()), *self.security]
        if environ.get("HTTP_IF_NONE_MATCH") and not is_resource_modified(environ, self.script_etag):
            return "304 NOT MODIFIED", headers, b""
        return "200 OK", [("Content-Type", "text/javascript; charset=utf-8"),
                          ("Content-Length", str(len(self.script))), *headers], self.script

    def _http_date(self) -> str:
        """Now as an HTTP date (werkzeug's make_conditional adds one), formatted once a second."""
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, formatdate(second, usegmt=True))
        return self._date[1]
