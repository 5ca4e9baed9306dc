"""POST /embed/v1/count: the embed's impressions and clicks, added up in memory and written in batches."""
from __future__ import annotations

import json
import logging
from datetime import date

import pytest
from sqlalchemy import select

from donations.campaigns import counting
from donations.campaigns.models import Article, AskCount, Campaign, CampaignVariant
from donations.extensions import db
from donations.ledger.models import Frequency
from tests.dates import RECENT_DAY
from tests.staff_helpers import in_app
from tests.functional.helpers import frame_ancestors

URL = "https://publisher.example/news/1"


@pytest.fixture(autouse=True)
def empty_buffer():
    counting.discard()
    yield
    counting.discard()


def beacon(client, body, content_type="text/plain;charset=UTF-8"):
    """What navigator.sendBeacon sends: a JSON text with a text/plain content type."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/embed/v1/count", data=data, content_type=content_type)


def event(**fields) -> dict:
    return {"type": "impression", "campaign": "default", "variant": "a", "url": URL, **fields}


def counts(app) -> list[tuple]:
    """(day, campaign slug, variant key, article url, impressions, clicks) of every ask_counts row."""
    with in_app(app):
        return [tuple(row) for row in db.session.execute(
            select(AskCount.day, Campaign.slug, CampaignVariant.key, Article.url, AskCount.impressions,
                   AskCount.clicks)
            .join(Campaign, AskCount.campaign_id == Campaign.id)
            .join(CampaignVariant, AskCount.variant_id == CampaignVariant.id)
            .join(Article, AskCount.article_id == Article.id)
            .order_by(Article.url, CampaignVariant.key))]


def articles(app) -> list[tuple]:
    with in_app(app):
        return [tuple(row) for row in db.session.execute(
            select(Article.url, Article.section, Article.author, Article.title).order_by(Article.url))]


def today():
    """The day of counts made a moment ago: today, or yesterday if midnight passed since (UTC)."""
    return RECENT_DAY


def test_an_impression_from_a_beacon_is_counted_and_answered_with_no_content(client):
    response = beacon(client, event())

    assert response.status_code == 204
    assert response.data == b""
    assert "Set-Cookie" not in response.headers
    assert counts(client.application) == [(today(), "default", "a", URL, 1, 0)]


def test_impressions_and_clicks_add_up_in_one_row_per_day_campaign_variant_and_article(client):
    for body in [event(), event(), event(type="click"), event(url="https://publisher.example/news/2")]:
        assert beacon(client, body).status_code == 204

    assert counts(client.application) == [
        (today(), "default", "a", URL, 2, 1),
        (today(), "default", "a", "https://publisher.example/news/2", 1, 0),
    ]


def test_the_same_article_under_other_query_strings_and_fragments_counts_as_one(client):
    for url in [URL, URL + "?sid=123", URL + "#comments", "HTTPS://Publisher.Example:443/news/1?fbclid=x#top"]:
        assert beacon(client, event(url=url)).status_code == 204
    assert beacon(client, event(url=URL + "?utm_source=newsletter&session=9")).status_code == 204

    assert counts(client.application) == [
        (today(), "default", "a", URL, 4, 0),
        (today(), "default", "a", URL + "?utm_source=newsletter", 1, 0),
    ]


def test_a_json_content_type_is_accepted_too(client):
    assert beacon(client, event(), content_type="application/json").status_code == 204
    assert counts(client.application)[0][4] == 1


def test_section_author_and_title_are_kept_trimmed_and_a_page_without_them_keeps_what_was_reported(client):
    beacon(client, event(section="  Politics ", author="Ada\tLovelace", title="A\x00 vote\n" + "x" * 400))
    beacon(client, event())  # a later view from a page without the meta tags

    [(url, section, author, title)] = articles(client.application)
    assert (url, section, author) == (URL, "Politics", "Ada Lovelace")
    assert title.startswith("A vote x") and len(title) == 300


def test_a_new_section_reported_for_an_article_replaces_the_old_one(client):
    beacon(client, event(section="Politics"))
    beacon(client, event(section="Local"))

    assert articles(client.application)[0][1] == "Local"


@pytest.mark.parametrize("body", [
    "not json",
    "[1, 2]",
    '"impression"',
    "[" * 5000,  # deeper than the JSON parser goes, within the size cap
    b"\xff\xfe{}",
    json.dumps(event(type="view")),
    json.dumps(event(type=None)),
    json.dumps({k: v for k, v in event().items() if k != "type"}),
    json.dumps(event(campaign=7)),
    json.dumps(event(campaign="")),
    json.dumps(event(campaign="x" * 65)),
    json.dumps(event(variant=["a"])),
    json.dumps(event(variant="b\n")),
    json.dumps(event(url="javascript:alert(1)")),
    json.dumps(event(url="ftp://publisher.example/a")),
    json.dumps(event(url="/news/1")),
    json.dumps(event(url=None)),
    json.dumps(event(section=5)),
    json.dumps(event(title={"x": 1})),
], ids=lambda body: str(body)[:40])
def test_bad_events_are_refused_with_400_and_nothing_is_counted(client, body):
    response = beacon(client, body)

    assert response.status_code == 400
    assert response.is_json and response.json["error"]
    assert counting.pending() == 0
    assert counts(client.application) == []
    assert articles(client.application) == []


def test_an_oversized_body_is_refused_and_nothing_is_counted(client):
    response = beacon(client, event(title="x" * 10_000))

    assert response.status_code == 413
    assert response.json == {"error": "The event is too large."}
    assert counts(client.application) == []


def test_the_endpoint_needs_no_csrf_token_and_no_session(client):
    client.get("/donate")  # a reader with a session cookie and a CSRF token in it
    response = beacon(client, event())

    assert response.status_code == 204
    assert "Set-Cookie" not in response.headers  # the session is neither written nor renewed


def test_events_for_unknown_campaigns_or_variants_are_dropped_and_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="donations.campaigns.counting")
    assert beacon(client, event(campaign="no-such-campaign")).status_code == 204
    assert beacon(client, event(variant="zz")).status_code == 204
    assert beacon(client, event()).status_code == 204

    assert counts(client.application) == [(today(), "default", "a", URL, 1, 0)]
    assert articles(client.application) == [(URL, None, None, None)]  # no article for a dropped event
    assert "1 events for unknown campaigns or variants dropped" in caplog.text


def test_each_variant_is_counted_on_its_own(client):
    with in_app(client.application):
        campaign = db.session.scalars(select(Campaign).where(Campaign.slug == "default")).one()
        db.session.add(CampaignVariant(campaign=campaign, key="b", name="Shorter ask", weight=1))
        db.session.commit()
    beacon(client, event(variant="b"))
    beacon(client, event(variant="b", type="click"))
    beacon(client, event())

    assert counts(client.application) == [(today(), "default", "a", URL, 1, 0), (today(), "default", "b", URL, 1, 1)]


# -- the buffer and flush() on their own ------------------------------------------------------------

def test_counts_wait_in_memory_until_flush_writes_them_in_one_batch(app_ctx):
    for _ in range(3):
        counting.record("impression", "default", "a", URL)
    counting.record("click", "default", "a", URL, today=date(2026, 11, 1))

    assert counting.pending() == 2
    assert db.session.scalar(select(AskCount.impressions)) is None
    assert counting.flush() == {"rows": 2, "unknown": 0}
    assert counting.pending() == 0
    assert sorted((tuple(r) for r in db.session.execute(select(AskCount.day, AskCount.impressions, AskCount.clicks))),
                  key=lambda row: row[2]) == [(today(), 3, 0), (date(2026, 11, 1), 0, 1)]
    assert counting.flush() == {"rows": 0, "unknown": 0}


def test_a_failed_flush_keeps_its_counts_for_the_next_try(app_ctx, monkeypatch, caplog):
    counting.record("impression", "default", "a", URL)
    counting.record("impression", "default", "a", URL)

    def database_away(taken):
        raise ConnectionError("database away")

    monkeypatch.setattr(counting, "_write", database_away)
    monkeypatch.setattr(counting, "_database_answers", lambda: False)
    with pytest.raises(ConnectionError):
        counting.flush()
    counting.record("impression", "default", "a", URL)  # arrived while the database was away
    monkeypatch.undo()

    assert counting.pending() == 1
    assert counting.flush()["rows"] == 1
    assert db.session.scalar(select(AskCount.impressions)) == 3
    assert "kept for the next try" in caplog.text


def test_a_full_buffer_drops_events_for_new_keys_and_says_so(app_ctx, monkeypatch, caplog):
    monkeypatch.setitem(counting._settings, "limit", 2)
    assert counting.record("impression", "default", "a", URL + "1")
    assert counting.record("impression", "default", "a", URL + "2")
    assert not counting.record("impression", "default", "a", URL + "3")
    assert counting.record("click", "default", "a", URL + "1")  # a key already held still counts

    assert counting.flush()["rows"] == 2
    assert "1 events dropped because the buffer was full" in caplog.text


def test_many_articles_are_written_in_chunks(app_ctx, monkeypatch):
    monkeypatch.setattr(counting, "CHUNK", 7)
    for n in range(30):
        counting.record("impression", "default", "a", f"{URL}/{n}", section="News")

    assert counting.flush()["rows"] == 30
    assert db.session.scalar(select(db.func.sum(AskCount.impressions))) == 30
    assert db.session.scalar(select(db.func.count()).select_from(Article).where(Article.section == "News")) == 30


def test_the_background_thread_writes_without_a_request(app, monkeypatch, committing_app):
    """A web process's own thread: counts reach the database within COUNT_FLUSH_SECONDS."""
    import time

    monkeypatch.setitem(app.config, "COUNT_FLUSH_SECONDS", 0.05)
    counting.record("impression", "default", "a", URL)
    thread = counting.ensure_flushing(app)
    try:
        assert thread is not None and counting.ensure_flushing(app) is None  # one thread per process
        written = None
        with app.app_context():
            for _ in range(250):
                written = db.session.scalar(select(AskCount.impressions))
                db.session.remove()
                if written:
                    break
                time.sleep(0.02)
    finally:
        counting.stop_flushing()
        thread.join(5)
    assert written == 1
    assert not thread.is_alive()


def test_other_methods_are_told_to_post_and_count_nothing(client):
    for method in ("get", "put", "delete"):
        response = getattr(client, method)("/embed/v1/count")
        assert response.status_code == 405, method
        assert response.json == {"error": "Send the event with POST."}
        assert response.headers["Allow"] == "POST, OPTIONS"
    assert client.options("/embed/v1/count").status_code == 204
    assert counts(client.application) == []


def test_the_answer_carries_the_apps_security_headers_and_is_never_cached(client):
    for response in (beacon(client, event()), beacon(client, "not json")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert frame_ancestors(response) == "'none'"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Vary" not in response.headers


def test_pages_of_other_sites_are_refused_so_nobody_can_fill_the_article_report(client):
    refused = beacon(client, event(url="https://elsewhere.example/news/1"))
    demo = beacon(client, event(url=client.application.config["PUBLIC_URL"] + "/"))  # the demo article
    publisher = beacon(client, event(url="HTTPS://Publisher.example:443/news/1"))

    assert refused.status_code == 400
    assert refused.json == {"error": "url must be a page of this publication (ALLOWED_ORIGINS)."}
    assert (demo.status_code, publisher.status_code) == (204, 204)
    assert [row[3] for row in counts(client.application)] == [
        client.application.config["PUBLIC_URL"] + "/", URL]
