"""The campaign editor beyond the copy: creating a campaign, its settings, variants and translations; each
bad field refused with a 400 and its message beside the field, nothing written; every save audited; staff
text never markup; the campaign page's goal, embed snippet and A/B table."""
from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from donations.campaigns.models import Allocation, AskCount, Campaign, CampaignTranslation, CampaignVariant, Placement
from donations.extensions import db
from donations.ledger.models import Frequency
from donations.staff.models import AuditEntry
from tests.staff_helpers import active_content, audit_rows, count, default_campaign_id, in_app, signed_in

XSS = {
    "script": '<script>alert("x")</script>',
    "img": '<img src=x onerror=alert("x")>',
    "js": "javascript:alert(1)",
}


@pytest.fixture
def staff(client):
    return signed_in(client, "staff")


@pytest.fixture
def campaign(client) -> int:
    return default_campaign_id(client.application)


def settings_form(**overrides) -> dict:
    data = {"name": "Winter drive", "language": "en", "active": "y", "starts_at": "2026-12-01T08:00",
            "ends_at": "2026-12-31T23:00", "priority": "5", "goal_amount": "10000", "goal_currency": "EUR",
            "goal_period": "month", "sections": "politics, local\nculture", "url_patterns": "/politics/*\n/local/*",
            "languages": "en, de-CH", "hide_from_supporters": "y", "placement": "inline", "after_paragraph": "3",
            "cap_views": "1", "cap_days": "7", "allocation": "thompson", "allocation_floor": "15"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def variant_form(**overrides) -> dict:
    data = {"key": "b", "name": "Urgent", "weight": "1", "active": "y", "headline": "Only today",
            "body": "", "button_label": "", "default_frequency": "monthly", "placement": "",
            "after_paragraph": "", "presets_monthly_EUR": "4, 8"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def snapshot(app, campaign_id: int) -> dict:
    with in_app(app):
        c = db.session.get(Campaign, campaign_id)
        return {name: getattr(c, name) for name in (
            "name", "language", "active", "starts_at", "ends_at", "priority", "goal_amount", "goal_currency",
            "goal_period", "sections", "url_patterns", "languages", "hide_from_supporters", "placement",
            "after_paragraph", "cap_views", "cap_days", "allocation", "allocation_floor")} | {
            "variants": [(v.key, v.name, v.weight, v.active, v.headline, v.presets) for v in c.variants]}


def field_error(html: str, field_id: str) -> str:
    start = html.index(f'<ul class="errors" id="{field_id}-error">')
    return html_lib.unescape(html[start:html.index("</ul>", start)])


# -- creating ---------------------------------------------------------------------------------------

def test_creating_a_campaign_starts_it_inactive_with_its_control_and_audits(client, staff):
    response = staff.post("/staff/campaigns", {"slug": "winter-2026", "name": "Winter", "language": "de"})

    assert response.status_code == 303
    with in_app(client.application):
        created = db.session.scalars(select(Campaign).where(Campaign.slug == "winter-2026")).one()
        assert (created.name, created.language, created.active) == ("Winter", "de", False)
        assert [v.key for v in created.variants] == ["a"]
        assert response.headers["Location"].endswith(f"/staff/campaigns/{created.id}")
    [entry] = audit_rows(client.application, AuditEntry.action == "campaign.create")
    assert entry["object_id"] == str(created.id) and entry["detail"]["slug"] == "winter-2026"


@pytest.mark.parametrize("form, field, message", [
    ({"slug": "Winter 2026", "name": "W", "language": "en"}, "slug", "lower-case letters"),
    ({"slug": "", "name": "W", "language": "en"}, "slug", "Enter a slug."),
    ({"slug": "default", "name": "W", "language": "en"}, "slug", "exists"),
    ({"slug": "w", "name": "", "language": "en"}, "name", "Enter a name."),
    ({"slug": "w", "name": "W", "language": "klingon"}, "language", "not a language code"),
])
def test_a_bad_new_campaign_is_refused_by_the_field(client, staff, form, field, message):
    before = count(client.application, Campaign)

    response = staff.post("/staff/campaigns", form)

    assert response.status_code == 400
    assert message in field_error(response.get_data(as_text=True), field)
    assert count(client.application, Campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "campaign.create") == []


# -- settings ---------------------------------------------------------------------------------------

def test_settings_are_saved_and_audited(client, staff, campaign):
    response = staff.post(f"/staff/campaigns/{campaign}/settings", settings_form())

    assert response.status_code == 303
    saved = snapshot(client.application, campaign)
    assert saved["starts_at"].replace(tzinfo=timezone.utc) == datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    assert (saved["goal_amount"], saved["goal_currency"], saved["goal_period"].value) == (1000000, "EUR", "month")
    assert saved["sections"] == ["politics", "local", "culture"]
    assert saved["url_patterns"] == ["/politics/*", "/local/*"]
    assert saved["languages"] == ["en", "de_CH"]
    assert (saved["placement"], saved["after_paragraph"]) == (Placement.INLINE, 3)
    assert (saved["cap_views"], saved["cap_days"], saved["priority"]) == (1, 7, 5)
    assert (saved["allocation"], saved["allocation_floor"], saved["hide_from_supporters"]) == (
        Allocation.THOMPSON, 15, True)
    [entry] = audit_rows(client.application, AuditEntry.action == "campaign.settings")
    changed = entry["detail"]["changed"]
    assert changed["goal_amount"] == {"from": None, "to": 1000000}
    assert changed["allocation"] == {"from": "split", "to": "thompson"}
    assert changed["starts_at"]["to"].startswith("2026-12-01T08:00")


def test_an_empty_goal_clears_the_goal(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/settings", settings_form())
    staff.post(f"/staff/campaigns/{campaign}/settings", settings_form(goal_amount="", cap_views="", cap_days=""))

    saved = snapshot(client.application, campaign)
    assert (saved["goal_amount"], saved["goal_currency"], saved["cap_views"], saved["cap_days"]) == (
        None, None, None, None)


@pytest.mark.parametrize("overrides, field, message", [
    ({"starts_at": "1st of December"}, "starts_at", "Enter a date and time"),
    ({"ends_at": "2026-11-01T00:00"}, "ends_at", "The end must come after the start."),
    ({"priority": "x"}, "priority", "integer"),
    ({"priority": "5000"}, "priority", "from -1000 to 1000"),
    ({"goal_amount": "ten thousand"}, "goal_amount", "Enter an amount"),
    ({"goal_amount": "100.005"}, "goal_amount", "at most 2 decimals"),
    ({"goal_amount": "0"}, "goal_amount", "more than zero"),
    ({"goal_currency": "XYZ"}, "goal_currency", "currencies readers can give in"),
    ({"url_patterns": "politics/*"}, "url_patterns", "starting with /"),
    ({"url_patterns": "/a b"}, "url_patterns", "without spaces"),
    ({"languages": "en, xx-nope"}, "languages", "not a language code"),
    ({"language": "<script>"}, "language", "not a language code"),
    ({"placement": "popup"}, "placement", "Not a valid choice"),
    ({"after_paragraph": "0"}, "after_paragraph", "from 1 to 100"),
    ({"cap_views": "1", "cap_days": ""}, "cap_views", "or neither"),
    ({"cap_days": "400"}, "cap_days", "1 to 365"),
    ({"allocation": "bandit"}, "allocation", "Not a valid choice"),
    ({"allocation_floor": "60"}, "allocation_floor", "0 to 50"),
    ({"name": ""}, "name", "Enter a name."),
])
def test_each_bad_setting_is_refused_by_its_field_and_nothing_is_saved(client, staff, campaign, overrides, field,
                                                                        message):
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/settings", settings_form(**overrides))

    assert response.status_code == 400
    assert message in field_error(response.get_data(as_text=True), f"settings-{field}")
    assert snapshot(client.application, campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "campaign.settings") == []


# -- variants and translations ------------------------------------------------------------------------

def test_adding_a_variant_saves_its_overrides_and_audits(client, staff, campaign):
    response = staff.post(f"/staff/campaigns/{campaign}/variants", variant_form())

    assert response.status_code == 303
    with in_app(client.application):
        variant = db.session.scalars(select(CampaignVariant).where(
            CampaignVariant.campaign_id == campaign, CampaignVariant.key == "b")).one()
        assert (variant.name, variant.headline, variant.body, variant.default_frequency) == (
            "Urgent", "Only today", None, Frequency.MONTHLY)
        assert variant.presets == {"monthly": {"EUR": [400, 800]}}  # only what was filled in
    [entry] = audit_rows(client.application, AuditEntry.action == "variant.create")
    assert entry["detail"]["key"] == "b" and entry["detail"]["headline"] == "Only today"


@pytest.mark.parametrize("overrides, field, message", [
    ({"key": "a"}, "key", "has a variant 'a' already"),
    ({"key": "B!"}, "key", "lower-case letters"),
    ({"key": "x" * 17}, "key", "1 to 16"),
    ({"name": ""}, "name", "Enter a name."),
    ({"weight": "-1"}, "weight", "from 0 to 1000"),
    ({"default_frequency": "weekly"}, "default_frequency", "Not a valid choice"),
    ({"after_paragraph": "abc"}, "after_paragraph", "integer"),
])
def test_a_bad_variant_is_refused_by_its_field_and_nothing_is_saved(client, staff, campaign, overrides, field,
                                                                     message):
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(**overrides))

    assert response.status_code == 400
    assert message in field_error(response.get_data(as_text=True), f"variant-{field}")
    assert snapshot(client.application, campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "variant.create") == []


def test_bad_variant_presets_are_refused(client, staff, campaign):
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(presets_monthly_EUR="abc"))

    assert response.status_code == 400
    assert "EUR: Enter an amount such as 25 or 25.50." in response.get_data(as_text=True)
    assert snapshot(client.application, campaign) == before


def variant_id(app, campaign: int, key: str) -> int:
    with in_app(app):
        return db.session.scalars(select(CampaignVariant.id).where(
            CampaignVariant.campaign_id == campaign, CampaignVariant.key == key)).one()


def test_editing_and_deactivating_a_variant(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form())
    b = variant_id(client.application, campaign, "b")

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{b}", variant_form(
        key=None, active=None, name="Urgent, retired", headline="", presets_monthly_EUR=""))

    assert response.status_code == 303
    with in_app(client.application):
        variant = db.session.get(CampaignVariant, b)
        assert (variant.active, variant.name, variant.headline, variant.presets) == (
            False, "Urgent, retired", None, None)
    [entry] = audit_rows(client.application, AuditEntry.action == "variant.edit")
    assert entry["detail"]["changed"]["active"] == {"from": True, "to": False}


def test_the_last_active_variant_cannot_be_deactivated(client, staff, campaign):
    a = variant_id(client.application, campaign, "a")
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{a}", variant_form(key=None, active=None,
                                                                                    name="Control"))

    assert response.status_code == 400
    assert "at least one active variant" in response.get_data(as_text=True)
    assert snapshot(client.application, campaign) == before


def embed_slugs(client) -> list[str]:
    return [c["slug"] for c in client.get("/embed/v1/campaigns.json").get_json()["campaigns"]]


def test_the_last_variant_with_a_weight_cannot_be_set_to_weight_0(client, staff, campaign):
    """Split by weight with every active variant at 0, the embed sends no reader anywhere: the campaign would
    leave the readers' pages without a word. The editor refuses it by the weight field."""
    a = variant_id(client.application, campaign, "a")
    assert "default" in embed_slugs(client)
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{a}", variant_form(key=None, name="Control",
                                                                                    weight="0"))

    assert response.status_code == 400
    assert "At least one active variant must have a weight above 0" in field_error(
        response.get_data(as_text=True), "variant-weight")
    assert snapshot(client.application, campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "variant.edit") == []
    assert "default" in embed_slugs(client)


def test_the_last_variant_with_a_weight_cannot_be_deactivated_while_the_others_weigh_0(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(weight="0"))
    a = variant_id(client.application, campaign, "a")
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{a}", variant_form(key=None, name="Control",
                                                                                    active=None))

    assert response.status_code == 400
    assert "must have a weight above 0" in field_error(response.get_data(as_text=True), "variant-weight")
    assert snapshot(client.application, campaign) == before
    assert "default" in embed_slugs(client)


def test_weight_0_is_saved_while_another_active_variant_has_a_weight(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(weight="2"))
    a = variant_id(client.application, campaign, "a")

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{a}", variant_form(key=None, name="Control",
                                                                                    weight="0"))

    assert response.status_code == 303
    assert [(key, weight) for key, _, weight, *_ in snapshot(client.application, campaign)["variants"]] == [
        ("a", 0), ("b", 2)]
    [shown] = [c for c in client.get("/embed/v1/campaigns.json").get_json()["campaigns"] if c["slug"] == "default"]
    assert [(v["key"], v["share"]) for v in shown["variants"]] == [("b", 1.0)]


def test_under_thompson_sampling_weights_may_all_be_0_but_splitting_by_weight_then_is_refused(
        client, staff, campaign):
    a = variant_id(client.application, campaign, "a")
    staff.post(f"/staff/campaigns/{campaign}/settings", settings_form(starts_at="", ends_at=""))  # Thompson
    assert staff.post(f"/staff/campaigns/{campaign}/variants/{a}", variant_form(
        key=None, name="Control", weight="0")).status_code == 303
    assert "default" in embed_slugs(client)  # Thompson sampling reads no weights
    before = snapshot(client.application, campaign)

    response = staff.post(f"/staff/campaigns/{campaign}/settings", settings_form(
        starts_at="", ends_at="", allocation="split"))

    assert response.status_code == 400
    assert "must have a weight above 0" in field_error(response.get_data(as_text=True), "settings-allocation")
    assert snapshot(client.application, campaign) == before
    assert len(audit_rows(client.application, AuditEntry.action == "campaign.settings")) == 1  # the first save
    assert "default" in embed_slugs(client)


def test_an_inactive_campaign_may_weigh_0_but_is_not_switched_on_so(client, staff):
    staff.post("/staff/campaigns", {"slug": "winter", "name": "Winter", "language": "en"})
    with in_app(client.application):
        other = db.session.scalars(select(Campaign).where(Campaign.slug == "winter")).one()
        other_id, control = other.id, other.variants[0].id
    assert staff.post(f"/staff/campaigns/{other_id}/variants/{control}", variant_form(
        key=None, name="Control", weight="0")).status_code == 303
    before = snapshot(client.application, other_id)

    response = staff.post(f"/staff/campaigns/{other_id}/settings", settings_form(
        starts_at="", ends_at="", allocation="split", languages="", sections="", url_patterns=""))

    assert response.status_code == 400
    assert "must have a weight above 0" in field_error(response.get_data(as_text=True), "settings-allocation")
    assert snapshot(client.application, other_id) == before and before["active"] is False
    assert "winter" not in embed_slugs(client)


def test_a_variant_of_another_campaign_is_404(client, staff, campaign):
    staff.post("/staff/campaigns", {"slug": "other", "name": "Other", "language": "en"})
    with in_app(client.application):
        other = db.session.scalars(select(Campaign).where(Campaign.slug == "other")).one()
        other_id, other_variant = other.id, other.variants[0].id

    assert staff.get(f"/staff/campaigns/{campaign}/variants/{other_variant}").status_code == 404
    assert staff.get(f"/staff/campaigns/{other_id}/variants/{other_variant}").status_code == 200


def test_translations_are_saved_changed_removed_and_audited(client, staff, campaign):
    a = variant_id(client.application, campaign, "a")
    path = f"/staff/campaigns/{campaign}/variants/{a}/translations"

    assert staff.post(path, {"locale": "de-ch", "headline": "Unterstützen Sie uns", "button_label": "Spenden"}
                      ).status_code == 303
    assert staff.post(path, {"locale": "de_CH", "headline": "Jetzt unterstützen", "button_label": "Spenden"}
                      ).status_code == 303
    with in_app(client.application):
        [t] = db.session.scalars(select(CampaignTranslation).where(CampaignTranslation.variant_id == a)).all()
        assert (t.locale, t.headline, t.body, t.button_label) == ("de_CH", "Jetzt unterstützen", None, "Spenden")
    assert staff.post(path, {"locale": "de_CH"}).status_code == 303
    assert count(client.application, CampaignTranslation, CampaignTranslation.variant_id == a) == 0
    actions = [e["action"] for e in audit_rows(client.application, AuditEntry.object_type == "campaign_variant")]
    assert actions == ["translation.edit", "translation.edit", "translation.delete"]


@pytest.mark.parametrize("form, message", [
    ({"locale": "", "headline": "x"}, "Enter a language."),
    ({"locale": "zz", "headline": "x"}, "not a language code"),
    ({"locale": "de", "headline": "x" * 201}, "200 characters"),
])
def test_a_bad_translation_is_refused_and_nothing_is_saved(client, staff, campaign, form, message):
    a = variant_id(client.application, campaign, "a")

    response = staff.post(f"/staff/campaigns/{campaign}/variants/{a}/translations", form)

    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(client.application, CampaignTranslation) == 0


# -- staff text is never markup ------------------------------------------------------------------------

def test_hostile_text_is_escaped_on_the_campaign_variant_and_list_pages(client, staff, campaign):
    hostile = " ".join(XSS.values())
    staff.post("/staff/campaigns", {"slug": "x", "name": hostile, "language": "en"})
    staff.post(f"/staff/campaigns/{campaign}/settings", settings_form(name=hostile, sections=hostile))
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(name=hostile, headline=hostile, body=hostile))
    b = variant_id(client.application, campaign, "b")
    staff.post(f"/staff/campaigns/{campaign}/variants/{b}/translations",
               {"locale": "de", "headline": hostile, "body": hostile, "thank_you": hostile})

    for path in ("/staff/campaigns", f"/staff/campaigns/{campaign}", f"/staff/campaigns/{campaign}/variants/{b}"):
        html = staff.get(path).get_data(as_text=True)
        found = active_content(html)
        assert not [s for s in found.scripts if "alert" in s], path
        assert found.handlers == [] and found.js_urls == [] and "img" not in found.tags, path
        assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(" in html, path


def test_a_bad_form_echoes_hostile_input_escaped(client, staff, campaign):
    response = staff.post(f"/staff/campaigns/{campaign}/settings",
                          settings_form(url_patterns=XSS["script"], name=XSS["img"]))

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    found = active_content(html)
    assert found.handlers == [] and "img" not in found.tags
    assert not [s for s in found.scripts if "alert" in s]


# -- the campaign page --------------------------------------------------------------------------------

def test_the_page_shows_the_goal_the_snippet_and_the_ab_table(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/settings", settings_form(goal_amount="100", allocation="split"))
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form())
    today = datetime.now(timezone.utc).date()
    with in_app(client.application):
        from donations.campaigns.articles import article_id_for
        c = db.session.get(Campaign, campaign)
        art = article_id_for("https://publisher.example/news/1")
        for key, impressions, clicks in (("a", 400, 12), ("b", 300, 30)):
            db.session.add(AskCount(day=today, campaign_id=campaign, variant_id=c.variant(key).id, article_id=art,
                                    impressions=impressions, clicks=clicks))
        db.session.commit()

    html = staff.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)

    assert "of €100.00 this month" in html
    # The versioned script URL (cached for a year; a new URL when the script changes).
    assert re.search(r'&lt;script src=&#34;http://donations.test/embed/v1/cta.js\?v=[0-9a-f]{16}&#34; '
                     r'data-campaign=&#34;default&#34; data-selector=&#34;article&#34; '
                     r'data-after-paragraph=&#34;3&#34; async&gt;&lt;/script&gt;', html)
    row_b = html[html.index('<tr data-variant="b">'):]
    row_b = row_b[:row_b.index("</tr>")]
    assert "<td>300</td><td>30</td><td>0</td>" in row_b and "10.00 %" in row_b  # click-through
    assert "Not enough data yet (1300 more impressions and 10 more gifts)." in html


def test_the_page_names_no_winner_when_neither_variant_is_likely_enough(client, staff, campaign, monkeypatch):
    monkeypatch.setitem(client.application.config, "AB_MIN_IMPRESSIONS", 100)
    monkeypatch.setitem(client.application.config, "AB_MIN_GIFTS", 0)
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(name="Urgent"))
    today = datetime.now(timezone.utc).date()
    with in_app(client.application):
        from donations.campaigns.articles import article_id_for
        c = db.session.get(Campaign, campaign)
        art = article_id_for("https://publisher.example/news/1")
        for key in ("a", "b"):
            db.session.add(AskCount(day=today, campaign_id=campaign, variant_id=c.variant(key).id, article_id=art,
                                    impressions=500, clicks=50))
        db.session.commit()
    # No gifts at all: both Beta(1, 501), a coin toss; no winner.
    html = staff.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)
    assert "No winner yet" in html


def test_the_page_names_the_winner(client, staff, campaign, monkeypatch):
    from tests.functional.test_ab_statistics import counts, gifts

    monkeypatch.setitem(client.application.config, "AB_MIN_IMPRESSIONS", 1000)
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(name="Urgent"))
    now = datetime.now(timezone.utc)
    with in_app(client.application):
        c = db.session.get(Campaign, campaign)
        counts(c, "a", 2000, day=now.date())
        counts(c, "b", 2000, day=now.date())
        gifts(c, "a", 20, paid_at=now)
        gifts(c, "b", 45, paid_at=now, frequency=Frequency.MONTHLY)
        db.session.commit()

    html = staff.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)

    assert "Winner: b · Urgent" in html
    row_b = html[html.index('<tr data-variant="b">'):]
    row_b = row_b[:row_b.index("</tr>")]
    assert "<td>2000</td><td>0</td><td>45</td>" in row_b
    assert "2.25 %" in row_b and "€225.00" in row_b and "100.00 %" in row_b  # conversion, per mille, recurring


def test_the_ab_range_comes_from_the_query(client, staff, campaign):
    html = staff.get(f"/staff/campaigns/{campaign}?from=2026-01-01&to=2026-01-31").get_data(as_text=True)

    assert 'name="from" value="2026-01-01"' in html and 'name="to" value="2026-01-31"' in html


def test_accountant_reads_the_page_but_sees_no_editing_forms(client, campaign):
    accountant = signed_in(client, "accountant")
    html = accountant.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)

    assert 'id="ab-table"' in html and 'id="new-variant"' not in html and "Save settings" not in html
    assert accountant.post(f"/staff/campaigns/{campaign}/settings", settings_form()).status_code == 403
    assert accountant.post(f"/staff/campaigns/{campaign}/variants", variant_form()).status_code == 403
    assert accountant.post("/staff/campaigns", {"slug": "n", "name": "N", "language": "en"}).status_code == 403


# -- what the page shows is what was saved ---------------------------------------------------------------

class FormValues(HTMLParser):
    """The values a browser would submit from the form with ``form_id``: inputs, checked boxes, textareas and
    selected options."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.values = form_id, False, {}
        self._textarea = self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "disabled" in a:
            return
        if tag == "input" and a.get("name") and (a.get("type") != "checkbox" or "checked" in a):
            self.values[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[self._textarea] = ""
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data


def form_values(html: str, form_id: str) -> dict:
    parser = FormValues(form_id)
    parser.feed(html)
    return parser.values


def test_the_settings_form_shows_what_was_saved_and_resubmitting_it_changes_nothing(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/settings", settings_form())
    html = staff.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)
    values = form_values(html, "settings")

    assert values["starts_at"] == "2026-12-01T08:00" and values["goal_amount"] == "10000.00"
    assert values["sections"].strip() == "politics\nlocal\nculture" and values["languages"].strip() == "en\nde_CH"
    assert values["allocation"] == "thompson" and values["active"] == "y" and values["cap_days"] == "7"
    before = snapshot(client.application, campaign)
    assert staff.post(f"/staff/campaigns/{campaign}/settings", values).status_code == 303
    assert snapshot(client.application, campaign) == before
    assert len(audit_rows(client.application, AuditEntry.action == "campaign.settings")) == 1


def test_the_variant_form_shows_what_was_saved_and_resubmitting_it_changes_nothing(client, staff, campaign):
    staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(placement="overlay", after_paragraph="2"))
    b = variant_id(client.application, campaign, "b")
    values = form_values(staff.get(f"/staff/campaigns/{campaign}/variants/{b}").get_data(as_text=True), "variant")

    assert (values["headline"], values["default_frequency"], values["placement"]) == ("Only today", "monthly",
                                                                                      "overlay")
    assert values["presets_monthly_EUR"] == "4.00, 8.00" and values["presets_one_off_EUR"] == ""
    before = snapshot(client.application, campaign)
    assert staff.post(f"/staff/campaigns/{campaign}/variants/{b}", values).status_code == 303
    assert snapshot(client.application, campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "variant.edit") == []


def test_every_id_on_the_campaign_and_variant_pages_is_unique_so_each_label_names_its_own_field(
        client, staff, campaign):
    with in_app(client.application):
        variant_id = db.session.get(Campaign, campaign).variant("a").id
    for path in (f"/staff/campaigns/{campaign}", f"/staff/campaigns/{campaign}/variants/{variant_id}"):
        html = staff.get(path).get_data(as_text=True)
        ids = re.findall(r'\bid="([^"]+)"', html)
        assert ids and len(ids) == len(set(ids)), path
        for target in re.findall(r'<label[^>]*\bfor="([^"]+)"', html):
            assert target in ids, (path, target)
