"""ask_view: a variant's copy in the reader's language, field by field, and its presets and frequency."""
from __future__ import annotations

import re

import pytest

from donations.campaigns.models import Campaign, CampaignTranslation, CampaignVariant
from donations.campaigns.operations import ask_view, embed_locale
from donations.extensions import db
from donations.ledger.models import Frequency


@pytest.fixture
def campaign(app_ctx) -> Campaign:
    campaign = Campaign(slug="test", name="Test", headline="Support us", body="{publication} needs you",
                        button_label="Give", thank_you="Thanks", language="en",
                        presets={"one_off": {"EUR": [1000, 2500]}, "monthly": {"EUR": [500]}},
                        default_frequency=Frequency.ONE_OFF)
    db.session.add(campaign)
    db.session.flush()
    db.session.refresh(campaign)  # the control "a" from the insert hook
    control = campaign.variant("a")
    variant = CampaignVariant(campaign_id=campaign.id, key="b", name="B", headline="Back us today",
                              presets={"monthly": {"EUR": [900]}}, default_frequency=Frequency.MONTHLY)
    db.session.add(variant)
    db.session.flush()
    db.session.add_all([
        CampaignTranslation(variant_id=control.id, locale="de", headline="Unterstützen Sie uns",
                            body="{publication} braucht Sie", thank_you="Danke"),
        CampaignTranslation(variant_id=control.id, locale="de_CH", headline="Unterstützen Sie uns (CH)"),
        CampaignTranslation(variant_id=variant.id, locale="de", button_label="Jetzt spenden"),
        CampaignTranslation(variant_id=control.id, locale="en_GB", headline="Support us, please"),
    ])
    db.session.flush()
    db.session.expire_all()
    return db.session.get(Campaign, campaign.id)


def test_control_in_the_campaigns_language_is_its_own_copy(campaign):
    ask = ask_view(campaign, "en")

    assert (ask["variant"], ask["headline"], ask["button_label"], ask["thank_you"]) == ("a", "Support us", "Give",
                                                                                         "Thanks")
    assert ask["body"] == "The Riverside Chronicle needs you"


def test_translation_for_the_primary_language_serves_a_regional_locale(campaign):
    ask = ask_view(campaign, "de_AT")

    assert ask["headline"] == "Unterstützen Sie uns"
    assert ask["body"] == "The Riverside Chronicle braucht Sie"
    assert ask["button_label"] == "Give"  # not translated: the campaign's own
    assert ask["presets"]["one_off"][0]["label"] == "€\xa010,00"  # Austrian format


def test_exact_locale_wins_over_its_primary_language(campaign):
    assert ask_view(campaign, "de_CH")["headline"] == "Unterstützen Sie uns (CH)"
    assert ask_view(campaign, "de_CH")["thank_you"] == "Danke"  # the field CH leaves empty comes from de


def test_variant_in_another_language_uses_its_translation_then_the_controls(campaign):
    ask = ask_view(campaign, "de", variant="b")

    assert ask["button_label"] == "Jetzt spenden"  # the variant's own German
    assert ask["headline"] == "Unterstützen Sie uns"  # German from the control beats the variant's English


def test_variant_in_the_campaigns_language_keeps_its_wording(campaign):
    assert ask_view(campaign, "en", variant="b")["headline"] == "Back us today"
    # a regional translation of the control does not hide what the variant tests
    assert ask_view(campaign, "en_GB", variant="b")["headline"] == "Back us today"
    assert ask_view(campaign, "en_GB")["headline"] == "Support us, please"


def test_variant_has_its_own_presets_and_default_frequency(campaign):
    ask = ask_view(campaign, "en", variant=campaign.variant("b"))

    assert ask["default_frequency"] == "monthly"
    assert [p["label"] for p in ask["presets"]["monthly"]] == ["€9.00"]
    # What the variant leaves out (staff fill in only what it tests) is the campaign's own.
    assert [p["amount"] for p in ask["presets"]["one_off"]] == campaign.preset_amounts("one_off", "EUR")
    assert ask["presets"]["one_off"]


def test_unknown_variant_key_shows_the_control(campaign):
    assert ask_view(campaign, "en", variant="zz")["variant"] == "a"


@pytest.mark.parametrize("given, locale", [("de-AT", "de_AT"), ("de_at", "de_AT"), ("DE", "de"), ("", "en"),
                                           (None, "en"), ("qq-ZZ", "en"), ("en-XY", "en")])
def test_embed_locale_is_a_babel_locale_or_its_language_or_english(given, locale):
    assert embed_locale(given) == locale


def test_the_donation_page_shows_the_variant_the_reader_came_from(campaign, client):
    page = client.get("/donate?campaign=test&variant=b&frequency=monthly").get_data(as_text=True)
    assert "Back us today" in page and "€9.00" in page and "€5.00" not in page
    assert re.search(r'<input[^>]*name="variant"[^>]*value="b"|<input[^>]*value="b"[^>]*name="variant"', page)

    control = client.get("/donate?campaign=test&frequency=monthly").get_data(as_text=True)
    assert "Support us" in control and "€5.00" in control and "€9.00" not in control
