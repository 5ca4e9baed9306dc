"""seed-demo's A/B test: the default campaign has a second variant, four weeks of counts per article and
gifts that name their variant, attempt and article, so the campaign page has figures; seeding twice adds
nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from donations import demo
from donations.campaigns.experiments import variant_stats
from donations.campaigns.models import Article, AskCount
from donations.extensions import db
from donations.ledger.models import Donation
from tests.factories import default_campaign


def test_the_demo_has_a_two_variant_test_with_counts_and_gifts_per_article(app_ctx):
    assert demo.seed(supporters=5) > 0
    campaign = default_campaign()
    today = datetime.now(timezone.utc).date()

    assert [v.key for v in campaign.active_variants] == ["a", "b"]
    stats = variant_stats(campaign, today - timedelta(days=demo.AB_DAYS - 1), today)
    assert [row.key for row in stats.variants] == ["a", "b"]
    assert all(row.impressions > 5000 and row.clicks > 0 and row.gifts > 0 for row in stats.variants)
    articles = db.session.scalars(select(Article).where(Article.section.is_not(None))).all()
    assert {a.title for a in articles} == {meta[2] for meta in demo.ARTICLE_META.values()}
    ask_gifts = db.session.scalars(select(Donation).where(Donation.variant_id.is_not(None))).all()
    assert ask_gifts and all(g.attempt_id and g.article_id for g in ask_gifts)
    days = db.session.scalar(select(func.count(func.distinct(AskCount.day))))
    assert days == demo.AB_DAYS

    counts_before = db.session.scalar(select(func.count()).select_from(AskCount))
    assert demo.seed(supporters=5) == 0
    assert db.session.scalar(select(func.count()).select_from(AskCount)) == counts_before


def test_after_seed_demo_the_donation_page_is_german_or_french_throughout(client):
    app = client.application
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert runner.invoke(args=["seed-demo"]).exit_code == 0  # again: nothing added twice

    german = client.get("/donate?locale=de").get_data(as_text=True)
    assert "<h1>Unterstützen Sie unsere Arbeit mit einer Spende</h1>" in german
    assert f"{app.config['PUBLICATION_NAME']} lebt von den Spenden" in german
    assert ">Spenden</button>" in german
    assert "Consider donating" not in german and "Help us to produce" not in german

    french = client.get("/donate?locale=fr").get_data(as_text=True)
    assert "<h1>Soutenez notre travail par un don</h1>" in french and ">Faire un don</button>" in french

    urgent = client.get("/donate?locale=de&variant=b").get_data(as_text=True)
    assert "Bevor Sie gehen" in urgent and "lebt von den Spenden" in urgent  # the body from the control's German

    english = client.get("/donate?locale=en").get_data(as_text=True)
    assert "<h1>Consider donating to support our work</h1>" in english


def test_a_demo_seeded_before_the_translations_gets_them_when_seeded_again(app_ctx):
    demo.seed(supporters=3)
    campaign = default_campaign()
    for variant in campaign.variants:
        variant.translations.clear()
    db.session.flush()

    assert demo.seed(supporters=3) == 0  # the ledger has gifts already: no more gifts, but the copy comes
    db.session.expire_all()
    assert {(t.variant.key, t.locale) for v in default_campaign().variants for t in v.translations} == \
        {("a", "de"), ("a", "fr"), ("b", "de"), ("b", "fr")}
