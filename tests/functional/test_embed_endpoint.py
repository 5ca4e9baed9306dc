"""campaigns.json and cta.js answered before Flask (campaigns/embed_endpoint.py): the same answers as the Flask
views, byte for byte and header for header, for every request it takes; everything else goes on to Flask; a
staff edit shows within EMBED_CACHE_SECONDS."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from werkzeug.http import parse_date
from werkzeug.test import EnvironBuilder, run_wsgi_app

from donations.campaigns import views
from donations.campaigns.embed_endpoint import EmbedEndpoint, _query
from donations.campaigns.models import Campaign
from tests.staff_helpers import in_app

HTTP_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


@pytest.fixture
def endpoint(client, monkeypatch) -> EmbedEndpoint:
    """The middleware of the test app, with a fresh cache kept a minute (as in production, where it is 5 s)."""
    app = client.application
    monkeypatch.setitem(app.config, "EMBED_CACHE_SECONDS", 60)
    monkeypatch.setattr(views, "_embed_cache", {})
    wsgi = app.wsgi_app
    while not isinstance(wsgi, EmbedEndpoint):
        wsgi = getattr(wsgi, "wsgi_app", None) or wsgi.app  # through ProxyFix when TRUSTED_PROXIES is set
    return wsgi


def call(wsgi, path: str, method: str = "GET", headers: dict | None = None) -> tuple[str, list, bytes]:
    """The answer exactly as a WSGI server receives it; the Date header's value checked, then blanked."""
    environ = EnvironBuilder(path=path, method=method, headers=headers or {}).get_environ()
    app_iter, status, response_headers = run_wsgi_app(wsgi, environ, buffered=True)
    body = b"".join(app_iter)
    listed = []
    for name, value in response_headers.to_wsgi_list():
        if name == "Date":
            # Both say "now" as werkzeug writes it (IMF-fixdate); the second may tick between the two calls.
            assert HTTP_DATE.fullmatch(value) and parse_date(value) is not None, value
            value = "<date>"
        listed.append((name, value))
    return status, listed, body


def taken_by_fast_path(endpoint: EmbedEndpoint, path: str, method: str = "GET", headers: dict | None = None) -> bool:
    environ = EnvironBuilder(path=path, method=method, headers=headers or {}).get_environ()
    answer = endpoint.campaigns(environ) if path.startswith(endpoint.CAMPAIGNS) else endpoint.embed_script(environ)
    return answer is not None


def edit_default(app, **fields) -> None:
    with in_app(app) as session:
        session.execute(update(Campaign).where(Campaign.slug == "default").values(**fields))
        session.commit()


CAMPAIGN_QUERIES = ["?locale=en", "", "?locale=", "?locale=de", "?locale=de-AT", "?locale=de_AT", "?locale=xx",
                    "?locale=fr&currency=eur", "?currency=EUR&locale=en", "?locale=en&utm_source=x&_=17"]
#: Requests the fast path leaves to Flask: odd queries, a locale or currency refused, a cookie, another method.
FALLING_THROUGH = [
    ("/embed/v1/campaigns.json?locale=en_!", "GET", {}),
    ("/embed/v1/campaigns.json?locale=%64e", "GET", {}),
    ("/embed/v1/campaigns.json?locale=de+AT", "GET", {}),
    ("/embed/v1/campaigns.json?locale=en&locale=de", "GET", {}),
    ("/embed/v1/campaigns.json?locale=en&currency=XYZ", "GET", {}),
    ("/embed/v1/campaigns.json?locale=en%00", "GET", {}),
    ("/embed/v1/campaigns.json?locale", "GET", {}),
    ("/embed/v1/campaigns.json?locale=en", "HEAD", {}),
    ("/embed/v1/campaigns.json?locale=en", "POST", {}),
    ("/embed/v1/campaigns.json?locale=en", "GET", {"Cookie": "session=anything"}),
    ("/embed/v1/cta.js", "GET", {"Range": "bytes=0-10"}),
    ("/embed/v1/cta.js", "GET", {"If-Modified-Since": "Fri, 27 Nov 2026 07:00:00 GMT"}),
    ("/embed/v1/cta.js", "GET", {"If-Match": '"nope"'}),
    ("/embed/v1/cta.js", "OPTIONS", {}),
    ("/embed/v1/cta.js?v=%41", "GET", {}),
]


def etags_to_try(etag: str) -> list[str | None]:
    return [None, etag, f"W/{etag}", "*", '"someone-else"', f'"x", {etag}', "garbage"]


@pytest.mark.parametrize("query", CAMPAIGN_QUERIES)
@pytest.mark.parametrize("origin", [None, "https://publisher.example", "https://elsewhere.example"])
def test_campaigns_json_before_flask_answers_as_the_flask_view(endpoint, query, origin):
    path = f"{endpoint.CAMPAIGNS}{query}"
    base = {"Origin": origin} if origin else {}
    flask_first = call(endpoint.wsgi_app, path, headers=base)  # the view reads the database and keeps the answer
    etag = dict(flask_first[1])["ETag"]
    for if_none_match in etags_to_try(etag):
        headers = {**base, **({"If-None-Match": if_none_match} if if_none_match else {})}
        assert taken_by_fast_path(endpoint, path, headers=headers)
        assert call(endpoint, path, headers=headers) == call(endpoint.wsgi_app, path, headers=headers), headers


@pytest.mark.parametrize("query", ["", "?v=0123456789abcdef", "VERSION", "?v=", "?utm_source=x"])
@pytest.mark.parametrize("origin", [None, "https://publisher.example", "https://elsewhere.example"])
def test_script_before_flask_answers_as_the_flask_view(endpoint, query, origin):
    path = endpoint.SCRIPT + (f"?v={endpoint.version}" if query == "VERSION" else query)
    base = {"Origin": origin} if origin else {}
    for if_none_match in etags_to_try(endpoint.script_etag):
        headers = {**base, **({"If-None-Match": if_none_match} if if_none_match else {})}
        assert taken_by_fast_path(endpoint, path, headers=headers)
        assert call(endpoint, path, headers=headers) == call(endpoint.wsgi_app, path, headers=headers), headers


@pytest.mark.parametrize(("path", "method", "headers"), FALLING_THROUGH)
def test_what_the_fast_path_does_not_take_goes_on_to_flask(endpoint, path, method, headers):
    call(endpoint.wsgi_app, path.split("?")[0] + "?locale=en")  # something cached, so a miss is not the reason

    assert not taken_by_fast_path(endpoint, path, method, headers)
    assert call(endpoint, path, method, headers) == call(endpoint.wsgi_app, path, method, headers)


def test_fresh_answers_are_served_without_flask_or_the_database(endpoint, monkeypatch):
    warm = call(endpoint, "/embed/v1/campaigns.json?locale=de")  # a miss: Flask answers and keeps it

    def no_flask(environ, start_response):
        raise AssertionError("reached Flask")

    monkeypatch.setattr(endpoint, "wsgi_app", no_flask)
    assert call(endpoint, "/embed/v1/campaigns.json?locale=de") == warm
    assert call(endpoint, "/embed/v1/cta.js")[0] == "200 OK"
    with pytest.raises(AssertionError, match="reached Flask"):
        call(endpoint, "/embed/v1/campaigns.json?locale=nl")  # not cached yet


def test_a_staff_edit_shows_within_embed_cache_seconds(endpoint, monkeypatch):
    app = endpoint.app
    clock = [1000.0]
    monkeypatch.setattr(views.time, "monotonic", lambda: clock[0])
    before = call(endpoint, "/embed/v1/campaigns.json?locale=fr")[2]
    edit_default(app, headline="A new headline")

    clock[0] += 59.9  # within the minute this test keeps answers: the kept answer, on the fast path
    assert call(endpoint, "/embed/v1/campaigns.json?locale=fr")[2] == before
    clock[0] += 0.1  # EMBED_CACHE_SECONDS after it was read: the database again, then kept anew
    assert b"A new headline" in call(endpoint, "/embed/v1/campaigns.json?locale=fr")[2]
    assert taken_by_fast_path(endpoint, "/embed/v1/campaigns.json?locale=fr")


def test_with_embed_cache_seconds_zero_every_answer_comes_from_the_database(endpoint, monkeypatch):
    monkeypatch.setitem(endpoint.app.config, "EMBED_CACHE_SECONDS", 0)
    call(endpoint, "/embed/v1/campaigns.json?locale=en")
    assert not taken_by_fast_path(endpoint, "/embed/v1/campaigns.json?locale=en")

    edit_default(endpoint.app, headline="Shown at once")
    assert b"Shown at once" in call(endpoint, "/embed/v1/campaigns.json?locale=en")[2]


@pytest.mark.parametrize(("query", "args"), [
    ("", {}), ("locale=en", {"locale": "en"}), ("locale=de-AT&currency=eur", {"locale": "de-AT", "currency": "eur"}),
    ("locale=", {"locale": ""}), ("a=1&b=", {"a": "1", "b": ""}),
    ("locale=en&locale=de", None), ("locale", None), ("locale=d%65", None), ("locale=de+AT", None), ("&", None),
    ("locale=en&", None), ("=en", None), ("locale=é", None),
])
def test_only_plain_queries_are_read_without_werkzeug(query, args):
    assert _query({"QUERY_STRING": query}) == args
