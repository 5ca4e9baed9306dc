"""Stored XSS: hostile campaign copy saved through the staff editor (campaign copy, variant copy, translations)
is inert everywhere it is shown: the donation page, the ask's fragment and iframe, the thank-you fragment, the
staff pages (and the editor's preview), and the JSON the embed script and publishers' front ends read (served as
JSON with nosniff; cta.js puts it in the page with textContent only). Campaign copy goes into no email."""
from __future__ import annotations

from pathlib import Path

import pytest

from donations.campaigns import views as campaign_views
from tests.functional.test_staff_campaign_editor import variant_form, variant_id
from tests.staff_helpers import active_content, campaign_form, default_campaign_id, signed_in

PAYLOADS = {
    "script": "<script>alert(1)</script>",
    "img": "<img src=x onerror=alert(1)>",
    "svg": "<svg onload=alert(1)>",
    "link": '<a href="javascript:alert(1)">click</a>',
    "bare": "javascript:alert(1)",
    "attribute": '" autofocus onfocus="alert(1)',
    "close": "</textarea></title><script>alert(1)</script>",
}
HOSTILE = " ".join(PAYLOADS.values())


def short(limit: int) -> str:
    """As much of the payloads as a field of ``limit`` characters holds, each whole."""
    text = ""
    for payload in PAYLOADS.values():
        if len(text) + len(payload) + 1 > limit:
            break
        text = f"{text} {payload}".strip()
    return text


@pytest.fixture
def hostile_campaign(client):
    """The default campaign's copy, a variant b and a German translation, all hostile; returns the ids."""
    staff = signed_in(client, "staff")
    app = client.application
    campaign = default_campaign_id(app)
    copy = {"headline": short(200), "body": HOSTILE, "button_label": short(80), "thank_you": short(500)}
    assert staff.post(f"/staff/campaigns/{campaign}", campaign_form(app, campaign, **copy)).status_code == 303
    assert staff.post(f"/staff/campaigns/{campaign}/variants", variant_form(
        name=short(100), headline=short(200), body=HOSTILE, button_label=short(80))).status_code == 303
    a, b = variant_id(app, campaign, "a"), variant_id(app, campaign, "b")
    for variant in (a, b):
        assert staff.post(f"/staff/campaigns/{campaign}/variants/{variant}/translations",
                          {"locale": "de", **copy}).status_code == 303
    return staff, campaign, b


def assert_inert(html: str, where: str) -> None:
    found = active_content(html)
    assert not [s for s in found.scripts if "alert" in s], where
    assert found.handlers == [], where
    assert found.js_urls == [], where
    assert not {"img", "svg"} & set(found.tags), where
    assert "<script>alert" not in html and "<svg onload" not in html and "<img src=x" not in html, where
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, where  # shown, as text


PUBLIC_PAGES = [
    "/donate", "/donate?campaign=default&variant=b", "/donate?locale=de", "/donate?variant=b&locale=de",
    "/embed/cta/default.html", "/embed/cta/default.html?locale=de", "/embed/cta/default.html?thanks=1",
    "/embed/cta/default.html?thanks=1&locale=de", "/embed/cta/default", "/embed/cta/default?locale=de",
]


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_hostile_copy_is_text_on_every_public_page(client, hostile_campaign, path):
    response = client.get(path)

    assert response.status_code == 200, path
    assert_inert(response.get_data(as_text=True), path)


def test_hostile_copy_is_text_on_the_staff_pages_and_the_preview(client, hostile_campaign):
    staff, campaign, b = hostile_campaign
    for path in ("/staff/campaigns", f"/staff/campaigns/{campaign}", f"/staff/campaigns/{campaign}/variants/{b}"):
        assert_inert(staff.get(path).get_data(as_text=True), path)
    preview = staff.post(f"/staff/campaigns/{campaign}", campaign_form(
        client.application, campaign, headline=short(200), body=HOSTILE, action="preview"))
    assert_inert(preview.get_data(as_text=True), "preview")


@pytest.mark.parametrize("path", ["/embed/v1/campaigns.json", "/embed/v1/campaigns.json?locale=de",
                                  "/api/v1/campaigns/default", "/api/v1/campaigns/default?locale=de"])
def test_the_json_carries_the_copy_as_data_never_as_a_page(client, hostile_campaign, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # no browser renders it as HTML
    assert "<script>alert(1)</script>" in response.get_data(as_text=True)  # the text as staff wrote it


def test_the_embed_script_writes_copy_with_text_content_only():
    script = (Path(campaign_views.bp.static_folder) / "cta.js").read_text()

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setTimeout(\"", "srcdoc"):
        assert sink not in script, sink
    # Copy goes through el(), whose only way to add text is textContent; the one href it builds is ours.
    assert 'node.textContent = props[k]' in script
    assert script.count("href:") == 1 and 'href: data.donate_url + "?" + params(' in script


def test_the_demo_article_loads_the_ask_from_our_script_only(client, hostile_campaign):
    html = client.get("/").get_data(as_text=True)
    found = active_content(html)

    assert found.scripts == [""]  # one script element, with a src and no inline code
    assert found.handlers == [] and found.js_urls == [] and "alert" not in html
