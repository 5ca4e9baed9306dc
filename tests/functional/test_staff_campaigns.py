"""The campaign editor: saving is live at once, staff text is always escaped, preview saves nothing,
bad presets are refused, and every save is audited."""
from __future__ import annotations

import pytest

from donations.staff.models import AuditEntry
from tests.staff_helpers import (
    active_content,
    audit_rows,
    campaign_form,
    campaign_snapshot,
    default_campaign_id,
    signed_in,
)

HOSTILE = {
    "headline": '<script>alert("headline")</script>Read this',
    "body": '<img src=x onerror=alert("body")> {publication} needs you',
    "button_label": '<a href="javascript:alert(1)">Give</a>',
    "thank_you": '<svg onload=alert("thanks")></svg>Thanks',
}


@pytest.fixture
def campaign(client) -> int:
    return default_campaign_id(client.application)


@pytest.fixture
def staff(client):
    return signed_in(client, "staff")


def save(staff, campaign: int, **fields):
    return staff.post(f"/staff/campaigns/{campaign}", campaign_form(staff.client.application, campaign, **fields))


def preview(staff, campaign: int, **fields):
    return save(staff, campaign, action="preview", **fields)


def assert_inert(html: str) -> None:
    """Nothing that staff typed can run: no script with their code, no on* handler, no javascript: URL."""
    found = active_content(html)
    assert not [s for s in found.scripts if "alert" in s], found.scripts
    assert found.handlers == []
    assert found.js_urls == []
    assert "img" not in found.tags and "svg" not in found.tags


def assert_escaped_headline_body_button(html: str) -> None:
    assert "&lt;script&gt;alert(" in html
    assert "&lt;img src=x onerror=alert(" in html
    assert "&lt;a href=" in html and "javascript:alert(1)" in html  # as text, not as a link


# -- saving ---------------------------------------------------------------------------------------

def test_saving_changes_the_ask_in_the_fragment_at_once(client, campaign, staff):
    response = save(staff, campaign, headline="Back the reporting", presets_one_off_EUR="7, 14, 21")

    assert response.status_code == 303
    html = client.get("/embed/cta/default.html").get_data(as_text=True)
    assert "Back the reporting" in html
    assert all(label in html for label in ("€7.00", "€14.00", "€21.00"))
    assert "€100.00" not in html  # the old largest preset


def test_saving_changes_the_ask_in_the_api_at_once(client, campaign, staff):
    save(staff, campaign, headline="Back the reporting", button_label="Chip in", presets_one_off_EUR="7, 14, 21",
         presets_monthly_EUR="3, 6")

    ask = client.get("/api/v1/campaigns/default").get_json()
    assert ask["headline"] == "Back the reporting" and ask["button_label"] == "Chip in"
    assert [p["amount"] for p in ask["presets"]["one_off"]] == [700, 1400, 2100]
    assert [p["amount"] for p in ask["presets"]["monthly"]] == [300, 600]


def test_saving_changes_the_ask_in_the_iframe_at_once(client, campaign, staff):
    save(staff, campaign, headline="Back the reporting", default_frequency="monthly", presets_monthly_EUR="3, 6")

    html = client.get("/embed/cta/default").get_data(as_text=True)
    assert "<title>Back the reporting</title>" in html
    assert 'name="frequency" value="monthly"' in html and "€6.00" in html


def test_saved_copy_shows_on_the_editor_page(client, campaign, staff):
    save(staff, campaign, headline="Back the reporting", presets_yearly_GBP="40, 80")

    html = staff.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)
    assert 'value="Back the reporting"' in html
    assert 'name="presets_yearly_GBP" value="40.00, 80.00"' in html


def test_a_save_writes_a_campaign_edit_audit_entry_with_what_changed(client, campaign, staff):
    before = campaign_snapshot(client.application, campaign)

    save(staff, campaign, headline="Back the reporting", presets_one_off_EUR="7, 14, 21")

    [entry] = audit_rows(client.application, AuditEntry.action == "campaign.edit")
    assert (entry["actor_id"], entry["object_type"], entry["object_id"]) == (staff.id, "campaign", str(campaign))
    changed = entry["detail"]["changed"]
    assert set(changed) == {"headline", "presets"}
    assert changed["headline"] == {"from": before["headline"], "to": "Back the reporting"}
    assert changed["presets"]["from"]["one_off"]["EUR"] == before["presets"]["one_off"]["EUR"]
    assert changed["presets"]["to"]["one_off"]["EUR"] == [700, 1400, 2100]


def test_publication_placeholder_is_filled_in_on_the_public_ask(client, campaign, staff):
    save(staff, campaign, body="{publication} runs on reader support.")

    html = client.get("/embed/cta/default.html").get_data(as_text=True)
    assert f"{client.application.config['PUBLICATION_NAME']} runs on reader support." in html


# -- staff text is never markup -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/embed/cta/default.html", "/embed/cta/default"])
def test_staff_text_with_markup_is_escaped_in_the_public_ask(client, campaign, staff, path):
    assert save(staff, campaign, **HOSTILE).status_code == 303

    html = client.get(path).get_data(as_text=True)

    assert_inert(html)
    assert_escaped_headline_body_button(html)


def test_staff_thank_you_text_with_markup_is_escaped_in_the_thank_you_fragment(client, campaign, staff):
    save(staff, campaign, **HOSTILE)

    html = client.get("/embed/cta/default.html?thanks=1").get_data(as_text=True)

    assert_inert(html)
    assert "&lt;svg onload=alert(" in html


@pytest.mark.parametrize("path", ["/staff/campaigns/{campaign}", "/staff/campaigns"])
def test_staff_text_with_markup_is_escaped_on_the_staff_pages(client, campaign, staff, path):
    save(staff, campaign, **HOSTILE)

    html = staff.get(path.format(campaign=campaign)).get_data(as_text=True)

    assert_inert(html)
    assert "&lt;script&gt;alert(" in html


def test_staff_text_with_markup_is_escaped_in_the_preview(client, campaign, staff):
    response = preview(staff, campaign, **HOSTILE)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert_inert(html)
    assert_escaped_headline_body_button(html)


def test_the_api_returns_staff_text_as_plain_data(client, campaign, staff):
    save(staff, campaign, **HOSTILE)

    ask = client.get("/api/v1/campaigns/default").get_json()
    assert ask["headline"] == HOSTILE["headline"]  # JSON carries text; the embed puts it in as text


# -- preview --------------------------------------------------------------------------------------

def test_preview_shows_the_typed_copy_and_saves_nothing(client, campaign, staff):
    before = campaign_snapshot(client.application, campaign)

    response = preview(staff, campaign, headline="Only a preview", presets_one_off_EUR="3, 33")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="dn-ask-title" class="dn-headline">Only a preview<' in html
    assert "€33.00" in html
    assert campaign_snapshot(client.application, campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "campaign.edit") == []
    assert "Only a preview" not in client.get("/embed/cta/default.html").get_data(as_text=True)


# -- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("presets, message", [
    ("abc", "EUR: Enter an amount such as 25 or 25.50."),
    ("0", "EUR: up to 6 amounts, each more than zero."),
    ("1, 2, 3, 4, 5, 6, 7", "EUR: up to 6 amounts, each more than zero."),
    ("-5", "EUR: up to 6 amounts, each more than zero."),
    ("2.505", "EUR: EUR amounts have at most 2 decimals."),
])
def test_bad_presets_are_refused_with_a_message_and_nothing_is_saved(client, campaign, staff, presets, message):
    before = campaign_snapshot(client.application, campaign)

    response = save(staff, campaign, headline="Should not be saved", presets_one_off_EUR=presets)

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'<p class="alert" role="alert">{message}</p>' in html
    assert campaign_snapshot(client.application, campaign) == before
    assert audit_rows(client.application, AuditEntry.action == "campaign.edit") == []


def test_bad_presets_are_refused_in_a_preview_too(client, campaign, staff):
    response = preview(staff, campaign, presets_monthly_USD="abc")

    assert response.status_code == 400
    assert "USD: Enter an amount such as 25 or 25.50." in response.get_data(as_text=True)


def test_six_presets_are_accepted(client, campaign, staff):
    assert save(staff, campaign, presets_one_off_EUR="1, 2, 3, 4, 5, 6").status_code == 303
    assert campaign_snapshot(client.application, campaign)["presets"]["one_off"]["EUR"] == [100, 200, 300, 400, 500,
                                                                                          600]


@pytest.mark.parametrize("field", ["headline", "body", "button_label", "thank_you"])
def test_an_empty_text_field_is_refused_and_nothing_is_saved(client, campaign, staff, field):
    before = campaign_snapshot(client.application, campaign)

    response = save(staff, campaign, **{field: ""})

    assert response.status_code == 400
    assert campaign_snapshot(client.application, campaign) == before


def test_an_unknown_frequency_is_refused(client, campaign, staff):
    before = campaign_snapshot(client.application, campaign)

    assert save(staff, campaign, default_frequency="weekly").status_code == 400
    assert campaign_snapshot(client.application, campaign) == before


def test_an_unknown_campaign_is_404(client, staff):
    assert staff.get("/staff/campaigns/999999").status_code == 404


@pytest.mark.parametrize("presets", ["0.10, 25", "25, 50000"])
def test_presets_outside_the_gift_limits_are_refused(client, campaign, staff, presets):
    before = campaign_snapshot(client.application, campaign)

    response = save(staff, campaign, presets_one_off_EUR=presets)

    assert response.status_code == 400
    assert campaign_snapshot(client.application, campaign) == before


# -- who may edit ---------------------------------------------------------------------------------

def test_accountant_sees_the_editor_read_only(client, campaign):
    accountant = signed_in(client, "accountant")
    html = accountant.get(f"/staff/campaigns/{campaign}").get_data(as_text=True)

    assert 'value="save"' not in html and 'value="preview"' not in html
    assert '<input disabled id="headline"' in html and '<textarea disabled id="body"' in html
    assert 'name="presets_one_off_EUR" value="10.00, 25.00, 50.00, 100.00" aria-label="Once presets in EUR" disabled>' \
        in html
    assert accountant.post(f"/staff/campaigns/{campaign}",
                           campaign_form(client.application, campaign, headline="No")).status_code == 403
