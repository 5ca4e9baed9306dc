"""Hostile and odd input found by the review of issue 7: one bad beacon must not stop the counting of every
other, and no staff field or query parameter may answer 500."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from donations.campaigns import counting
from donations.campaigns.models import Article, AskCount, Campaign
from donations.extensions import db
from tests.staff_helpers import default_campaign_id, in_app, signed_in

URL = "https://publisher.example/news/1"


@pytest.fixture(autouse=True)
def empty_buffer():
    counting.discard()
    yield
    counting.discard()


def beacon(client, body):
    # As a browser's JSON.stringify sends it: non-ASCII as UTF-8, not as \u escapes.
    return client.post("/embed/v1/count", data=json.dumps(body, ensure_ascii=False).encode(),
                       content_type="text/plain;charset=UTF-8")


def event(**fields) -> dict:
    return {"type": "impression", "campaign": "default", "variant": "a", "url": URL, **fields}


def impressions_of(app, url: str) -> int:
    with in_app(app):
        return sum(db.session.scalars(
            select(AskCount.impressions).join(Article, AskCount.article_id == Article.id).where(Article.url == url)))


def stored_urls(app) -> list[str]:
    with in_app(app):
        return list(db.session.scalars(select(Article.url)))


# -- counting: one hostile beacon must not stop the counting of every other -----------------------


def test_a_url_with_a_nul_character_is_refused_and_later_counts_are_written(client):
    response = beacon(client, event(url="https://publisher.example/news/1\u0000x"))
    beacon(client, event())

    assert response.status_code == 400
    assert not any("\x00" in url for url in stored_urls(client.application))
    assert impressions_of(client.application, URL) == 1
    assert counting.pending() == 0


def test_a_normalised_url_stays_within_max_url_and_later_counts_are_written(client):
    long_url = "https://publisher.example/news/2?utm_source=" + "".join(chr(0x4E00 + (i * 7919) % 20000)
                                                                         for i in range(1900))
    first = beacon(client, event(url=long_url))
    beacon(client, event())

    assert first.status_code in (204, 400)
    assert all(len(url) <= 2000 for url in stored_urls(client.application))
    assert impressions_of(client.application, URL) == 1
    assert counting.pending() == 0


# -- the staff campaign editor: bad input is a 400 with nothing written ---------------------------

def settings_form(**overrides) -> dict:
    data = {"name": "Winter drive", "language": "en", "active": "y", "starts_at": "2026-12-01T08:00",
            "ends_at": "2026-12-31T23:00", "priority": "5", "goal_amount": "", "goal_currency": "EUR",
            "goal_period": "month", "sections": "", "url_patterns": "", "languages": "",
            "placement": "inline", "after_paragraph": "", "cap_views": "", "cap_days": "",
            "allocation": "split", "allocation_floor": "10"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_a_start_time_out_of_range_is_a_400(client):
    staff = signed_in(client, "staff")
    campaign_id = default_campaign_id(client.application)

    response = staff.post(f"/staff/campaigns/{campaign_id}/settings",
                          settings_form(starts_at="0001-01-01T00:00+01:00", ends_at=""))

    assert response.status_code == 400


def test_switching_off_the_default_campaign_does_not_take_the_donation_page_down(client):
    staff = signed_in(client, "staff")
    campaign_id = default_campaign_id(client.application)

    saved = staff.post(f"/staff/campaigns/{campaign_id}/settings", settings_form(name="Default", active=None))

    donate = client.get("/donate")
    # Either the editor refuses (400, nothing written) or the donation page still works.
    with in_app(client.application):
        still_active = db.session.get(Campaign, campaign_id).active
    assert (saved.status_code == 400 and still_active) or donate.status_code == 200


# -- the per-article report -----------------------------------------------------------------------


def test_a_page_number_that_is_no_number_is_not_a_500(client):
    response = signed_in(client, "staff").get("/staff/articles?page=%C2%B2")

    assert response.status_code in (200, 400)


def test_a_campaign_id_that_is_no_number_is_a_400(client):
    response = signed_in(client, "staff").get("/staff/articles?campaign=%C2%B2")

    assert response.status_code == 400


def test_a_large_goal_is_saved_or_refused_with_a_400(client, postgres):
    staff = signed_in(client, "staff")
    campaign_id = default_campaign_id(client.application)

    response = staff.post(f"/staff/campaigns/{campaign_id}/settings",
                          settings_form(goal_amount="30000000", goal_currency="EUR"))

    assert response.status_code in (303, 400)


def test_a_batch_the_database_refuses_is_written_row_by_row_and_only_the_refused_row_is_dropped(app_ctx,
                                                                                                monkeypatch):
    from sqlalchemy.exc import DataError

    poisoned = "https://publisher.example/poisoned"
    write = counting._write

    def refuse_the_poisoned_row(taken):
        if any(key[3] == poisoned for key in taken.counts):
            raise DataError("INSERT", {}, Exception("value too long"))
        return write(taken)

    monkeypatch.setattr(counting, "_write", refuse_the_poisoned_row)
    for url in (URL, poisoned, "https://publisher.example/news/3"):
        counting.record("impression", "default", "a", url)

    counting.flush()

    assert impressions_of(app_ctx, URL) == 1
    assert impressions_of(app_ctx, "https://publisher.example/news/3") == 1
    assert impressions_of(app_ctx, poisoned) == 0
    assert counting.pending() == 0
