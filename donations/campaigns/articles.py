"""Articles by their normalised URL: what the ask's counts and the gifts it brought are grouped by."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select

from ..db import insert_ignore, now_utc
from ..extensions import db
from .models import Article

MAX_URL = 2000


def normalise_url(value: str) -> str | None:
    """The article's URL as counted: http(s) only, scheme and host in lower case, no default port, no
    fragment, no user info, and of the query only the ``utm_*`` parameters (sorted), which say where the
    reader came from; every other parameter (sessions, trackers, reader ids) is dropped so that one
    article is one row and nothing personal is kept. None when it is not an http(s) URL."""
    if not isinstance(value, str) or len(value) > MAX_URL or not value.isprintable():
        return None  # control characters (NUL, line ends) have no place in a URL, nor in PostgreSQL text
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    scheme = parts.scheme.lower()
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    utm = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=False) if k.lower().startswith("utm_"))
    url = urlunsplit((scheme, netloc, parts.path or "/", urlencode(utm), ""))
    # Re-encoding raw non-ASCII utm_ values can make a URL many times longer: keep the column's (and its
    # unique index's) limit for what is stored, not only for what came in.
    return url if len(url) <= MAX_URL else None


def article_id_for(url: str | None) -> int | None:
    """The id of the article at ``url`` (normalised), creating its row when new; None for no or a bad URL."""
    url = normalise_url(url) if url else None
    if url is None:
        return None
    found = db.session.scalar(select(Article.id).where(Article.url == url))
    if found is None:
        # A concurrent first sight of the same article inserts nothing here; both then read the one row.
        insert_ignore(db.session, Article, {"url": url, "created_at": now_utc()}, ["url"])
        found = db.session.scalar(select(Article.id).where(Article.url == url))
    return found
