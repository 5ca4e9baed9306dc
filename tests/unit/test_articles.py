"""Articles are counted by one normalised URL: nothing personal in the query, one row per article."""
import pytest
from sqlalchemy import func, select

from donations.campaigns.articles import article_id_for, normalise_url
from donations.campaigns.models import Article, Campaign, CampaignVariant
from donations.extensions import db
from donations.ledger.models import Frequency


@pytest.mark.parametrize("raw, counted", [
    ("https://News.Example/politics/vote?utm_source=tw&sid=abc&utm_campaign=x#comments",
     "https://news.example/politics/vote?utm_campaign=x&utm_source=tw"),
    ("HTTPS://news.example:443", "https://news.example/"),
    ("http://news.example:80/a", "http://news.example/a"),
    ("http://news.example:8080/a", "http://news.example:8080/a"),
    ("https://reader:secret@news.example/a?email=ada@example.com", "https://news.example/a"),
    ("https://[2001:db8::1]:8443/a", "https://[2001:db8::1]:8443/a"),
])
def test_urls_are_normalised(raw, counted):
    assert normalise_url(raw) == counted


@pytest.mark.parametrize("raw", ["javascript:alert(1)", "ftp://news.example/a", "/relative", "", "https://",
                                 "https://[bad/", "https://x.example/" + "a" * 2000, None, 42])
def test_what_is_not_an_article_url_is_none(raw):
    assert normalise_url(raw) is None


def test_one_article_row_per_normalised_url(app_ctx):
    first = article_id_for("https://news.example/a?sid=1")
    assert article_id_for("https://NEWS.example/a?sid=2#x") == first
    assert article_id_for("https://news.example/b") != first
    assert article_id_for("mailto:ada@example.com") is None
    assert db.session.scalar(select(func.count()).select_from(Article)) == 2


def test_every_campaign_starts_with_its_control_variant(app_ctx):
    campaign = Campaign(slug="spring", name="Spring", headline="h", body="b", button_label="Give",
                        presets={}, default_frequency=Frequency.ONE_OFF)
    db.session.add(campaign)
    db.session.flush()
    db.session.expire(campaign)
    assert [(v.key, v.active, v.weight) for v in campaign.variants] == [("a", True, 1)]


def test_a_campaign_made_with_its_variants_gets_no_extra_control(app_ctx):
    campaign = Campaign(slug="autumn", name="Autumn", headline="h", body="b", button_label="Give", presets={},
                        default_frequency=Frequency.ONE_OFF,
                        variants=[CampaignVariant(key="x", name="X"), CampaignVariant(key="y", name="Y")])
    db.session.add(campaign)
    db.session.flush()
    db.session.expire(campaign)
    assert [v.key for v in campaign.variants] == ["x", "y"]
