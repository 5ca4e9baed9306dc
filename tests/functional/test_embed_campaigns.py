"""campaigns.json, what the embed script chooses from: the campaigns showing now, their rules, placement, cap,
goal and variants with copy in the page's language; public, cacheable and cheap. And the versioned script."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from donations.campaigns import views
from donations.campaigns.models import Campaign, CampaignTranslation, CampaignVariant, Placement
from donations.db import now_utc
from donations.extensions import db
from donations.ledger.models import Frequency
from tests.staff_helpers import in_app, webhook_gift
from tests.functional.helpers import frame_ancestors

PRESETS = {"one_off": {"EUR": [1000, 2500]}, "monthly": {"EUR": [500]}, "yearly": {"EUR": [5000]}}


def add_campaign(app, slug: str, **fields) -> int:
    with in_app(app) as session:
        campaign = Campaign(slug=slug, name=slug, headline=f"{slug} headline", body=f"{slug} body",
                            button_label="Give", presets=PRESETS, default_frequency=Frequency.ONE_OFF, **fields)
        session.add(campaign)
        session.commit()
        return campaign.id


def edit_default(app, **fields) -> None:
    with in_app(app) as session:
        session.execute(update(Campaign).where(Campaign.slug == "default").values(**fields))
        session.commit()


def campaigns(client, query: str = "locale=en") -> dict:
    response = client.get(f"/embed/v1/campaigns.json?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {c["slug"]: c for c in response.get_json()["campaigns"]}


# -- what shows --------------------------------------------------------------------------------------

def test_only_active_campaigns_within_their_schedule_are_listed(client):
    app, now = client.application, now_utc()
    add_campaign(app, "running", starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=1))
    add_campaign(app, "future", starts_at=now + timedelta(hours=1))
    add_campaign(app, "ended", ends_at=now - timedelta(seconds=1))
    add_campaign(app, "paused", active=False)

    assert set(campaigns(client)) == {"default", "running"}


def test_campaigns_come_highest_priority_first(client):
    add_campaign(client.application, "urgent", priority=10)
    add_campaign(client.application, "background", priority=-5)

    slugs = [c["slug"] for c in client.get("/embed/v1/campaigns.json").get_json()["campaigns"]]
    assert slugs == ["urgent", "default", "background"]


def test_rules_placement_and_cap_travel_as_data(client):
    add_campaign(client.application, "politics", sections=["Politics"], url_patterns=["/politics/*"],
                 languages=["de_AT", "fr"], hide_from_supporters=True, placement=Placement.OVERLAY,
                 cap_views=1, cap_days=7)

    found = campaigns(client)["politics"]

    assert found["rules"] == {"sections": ["Politics"], "url_patterns": ["/politics/*"], "languages": ["de", "fr"],
                              "hide_from_supporters": True}
    assert found["cap"] == {"views": 1, "days": 7}
    assert found["variants"][0]["placement"] == "overlay"
    assert campaigns(client)["default"]["cap"] is None


def test_variants_carry_their_share_copy_presets_and_placement(client):
    app = client.application
    campaign_id = add_campaign(app, "test", after_paragraph=3)
    with in_app(app) as session:
        session.add(CampaignVariant(campaign_id=campaign_id, key="b", name="Urgent", weight=3, headline="Act now",
                                    presets={"monthly": {"EUR": [700]}}, default_frequency=Frequency.MONTHLY,
                                    placement=Placement.BANNER))
        session.add(CampaignVariant(campaign_id=campaign_id, key="c", name="Off", weight=0, headline="Never"))
        session.commit()

    variants = {v["key"]: v for v in campaigns(client)["test"]["variants"]}

    assert set(variants) == {"a", "b"}  # weight 0: no reader goes there, so it does not travel
    assert (variants["a"]["share"], variants["b"]["share"]) == (0.25, 0.75)
    assert variants["a"]["headline"] == "test headline" and variants["b"]["headline"] == "Act now"
    assert variants["b"]["body"] == "test body"  # an empty field is the campaign's own
    assert variants["b"]["default_frequency"] == "monthly"
    assert [p["label"] for p in variants["b"]["presets"]["monthly"]] == ["€7.00"]
    assert (variants["a"]["placement"], variants["a"]["after_paragraph"]) == ("inline", 3)
    assert (variants["b"]["placement"], variants["b"]["after_paragraph"]) == ("banner", 3)


def test_nothing_about_the_reader_is_in_the_answer(client):
    body = client.get("/embed/v1/campaigns.json?locale=en", headers={"Cookie": "session=abc"}).get_data(as_text=True)

    assert "session" not in body and "abc" not in body
    assert client.get("/embed/v1/campaigns.json?locale=en").get_data() == body.encode()


# -- language ----------------------------------------------------------------------------------------

def test_german_page_gets_german_copy_and_amounts_formatted_for_german(client):
    app = client.application
    with in_app(app) as session:
        control = session.scalars(select(CampaignVariant).join(Campaign).where(Campaign.slug == "default")).one()
        session.add(CampaignTranslation(variant_id=control.id, locale="de", headline="Unterstützen Sie uns",
                                        button_label="Spenden"))
        session.commit()

    data = client.get("/embed/v1/campaigns.json?locale=de-AT").get_json()
    [variant] = data["campaigns"][0]["variants"]

    assert data["locale"] == "de_AT"
    assert variant["headline"] == "Unterstützen Sie uns" and variant["button_label"] == "Spenden"
    assert variant["body"].startswith("Help us")  # not translated: the campaign's own
    assert data["labels"]["choose"] == "Betrag wählen"
    de = client.get("/embed/v1/campaigns.json?locale=de").get_json()["campaigns"][0]["variants"][0]
    assert de["presets"]["one_off"][0]["label"] == "10,00\xa0€"


def test_currency_picks_the_presets_and_an_unknown_one_is_refused(client):
    usd = campaigns(client, "locale=en&currency=usd")["default"]["variants"][0]
    assert usd["currency"] == "USD" and usd["presets"]["one_off"][0]["label"] == "$10.00"

    refused = client.get("/embed/v1/campaigns.json?locale=en&currency=XYZ")
    assert refused.status_code == 400 and "currency must be one of" in refused.get_json()["error"]


@pytest.mark.parametrize("locale", ["<script>", "a" * 40, "de AT"])
def test_text_that_is_no_locale_is_refused(client, locale):
    response = client.get("/embed/v1/campaigns.json", query_string={"locale": locale})

    assert response.status_code == 400
    assert response.get_json() == {"error": "locale must be a language tag such as en, de or de-AT."}


def test_a_language_without_locale_data_gets_english(client):
    assert client.get("/embed/v1/campaigns.json?locale=qq").get_json()["locale"] == "en"
    assert client.get("/embed/v1/campaigns.json").get_json()["locale"] == "en"


# -- goal ----------------------------------------------------------------------------------------------

def test_goal_progress_is_formatted_for_the_locale(client):
    app = client.application
    edit_default(app, goal_amount=1_000_000, goal_currency="EUR")
    webhook_gift(client, amount=842_000)

    en = campaigns(client)["default"]["goal"]
    de = campaigns(client, "locale=de")["default"]["goal"]

    assert en == {"raised": 842_000, "goal": 1_000_000, "currency": "EUR", "percent": 84, "period": "month",
                  "label": "€8,420 of €10,000 this month"}
    assert de["label"] == "8.420\xa0€ von 10.000\xa0€ diesen Monat"


def test_a_campaign_without_goal_has_no_progress(client):
    assert campaigns(client)["default"]["goal"] is None


# -- caching -------------------------------------------------------------------------------------------

def test_answer_is_public_cacheable_and_open_to_every_origin(client):
    response = client.get("/embed/v1/campaigns.json?locale=en", headers={"Origin": "https://anyone.example"})

    assert response.headers["Cache-Control"] == "public, max-age=0"  # tests: EMBED_CACHE_SECONDS = 0
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["ETag"].startswith('"')
    assert response.mimetype == "application/json"


@pytest.mark.parametrize(("seconds", "header"), [(5, "public, max-age=5"), (0.5, "public, max-age=1")])
def test_browsers_keep_the_answer_no_longer_than_each_process_does(client, monkeypatch, seconds, header):
    # A fixed minute here let a reader, or the staff member who had just edited the ask, reload the article and
    # still see the old copy (found in Chromium, tests/browser/test_staff_journeys.py).
    monkeypatch.setitem(client.application.config, "EMBED_CACHE_SECONDS", seconds)
    monkeypatch.setattr(views, "_embed_cache", {})

    first = client.get("/embed/v1/campaigns.json?locale=en")
    again = client.get("/embed/v1/campaigns.json?locale=en")  # from the process's cache

    assert first.headers["Cache-Control"] == again.headers["Cache-Control"] == header


def test_unchanged_answer_is_304_and_a_change_gives_a_new_etag(client):
    first = client.get("/embed/v1/campaigns.json?locale=en")
    again = client.get("/embed/v1/campaigns.json?locale=en", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""

    edit_default(client.application, headline="Changed")
    changed = client.get("/embed/v1/campaigns.json?locale=en", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]


def test_each_process_keeps_the_answer_a_few_seconds_without_asking_the_database(client, monkeypatch):
    monkeypatch.setitem(client.application.config, "EMBED_CACHE_SECONDS", 60)
    monkeypatch.setattr(views, "_embed_cache", {})
    first = client.get("/embed/v1/campaigns.json?locale=fr").get_data()
    edit_default(client.application, headline="Changed")

    assert client.get("/embed/v1/campaigns.json?locale=fr").get_data() == first  # served from the cache
    assert b"Changed" in client.get("/embed/v1/campaigns.json?locale=nl").get_data()  # another key

    monkeypatch.setattr(views.time, "monotonic", lambda: 10**12)  # a minute later, and much more
    assert b"Changed" in client.get("/embed/v1/campaigns.json?locale=fr").get_data()


# -- the script and framing ----------------------------------------------------------------------------

def test_versioned_script_is_immutable_for_a_year(client, app):
    with app.test_request_context():
        url = views.embed_script_url()
    response = client.get(url)

    assert url.startswith("/embed/v1/cta.js?v=")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.data == client.get("/embed/v1/cta.js").data


@pytest.mark.parametrize("query", ["", "?v=0123456789abcdef"])
def test_plain_or_stale_script_url_is_revalidated_after_five_minutes(client, query):
    response = client.get(f"/embed/v1/cta.js{query}")

    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/embed/v1/cta.js", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_script_etag_is_the_content_hash_in_the_versioned_url(client, app):
    with app.test_request_context():
        version = views.embed_script_url().rsplit("=", 1)[1]
    assert client.get("/embed/v1/cta.js").headers["ETag"] == f'"{version}"'


@pytest.mark.parametrize("path", ["/", "/embed/v1/campaigns.json", "/embed/v1/cta.js", "/embed/cta/default.html",
                                  "/donate", "/staff/login"])
def test_nothing_but_the_iframe_may_be_framed(client, path):
    assert frame_ancestors(client.get(path)) == "'none'"


def test_the_iframe_may_be_framed_by_the_allowed_origins_only(client):
    assert (frame_ancestors(client.get("/embed/cta/default")) == "https://publisher.example")
