"""Stored XSS in Chromium: hostile campaign copy (campaign, variant and translation) on every page that shows
it, including the ask the embed script builds in its Shadow DOM; no dialog opens, no injected element exists,
and the copy is there as text."""
from __future__ import annotations

import pytest

from donations.campaigns.models import Placement
from tests.browser.conftest import skip_without_chromium
from tests.staff_helpers import PASSWORD, make_user

skip_without_chromium()

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>",
            '<a href="javascript:alert(1)">click</a>', "javascript:alert(1)"]
HOSTILE = " ".join(PAYLOADS)
SHORT = " ".join(PAYLOADS[:3])  # fits the 80 characters of a button

#: Elements and attributes the payloads would create if any of them were parsed as markup, in the document,
#: in every shadow root, and in the text the reader sees.
INSPECT = """() => {
  const roots = [document];
  document.querySelectorAll('*').forEach(e => { if (e.shadowRoot) roots.push(e.shadowRoot); });
  const bad = [];
  let text = '';
  for (const root of roots) {
    root.querySelectorAll('[onerror], [onload], [onfocus], [onclick], a[href^="javascript:" i], img[src="x"],'
                          + ' script:not([src])').forEach(e => bad.push(e.outerHTML.slice(0, 120)));
    text += root === document ? document.body.innerText : root.textContent;
  }
  return {bad, text, shadows: roots.length - 1};
}"""


@pytest.fixture
def hostile(campaigns):
    copy = {"headline": SHORT, "body": HOSTILE, "button_label": SHORT, "thank_you": HOSTILE}
    campaigns("default", placement=Placement.INLINE, after_paragraph=1, **copy,
              variants=[{"key": "b", "weight": 1, "headline": SHORT, "body": HOSTILE, "button_label": SHORT}],
              translations=[{"locale": "de", **copy}, {"variant": "b", "locale": "de", **copy}])


def visit(context, url: str, *, wait_for_ask: bool = False) -> dict:
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    if wait_for_ask:
        page.locator("[data-donations-ask]").wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # time for an onerror/onload to fire, were there one
    found = page.evaluate(INSPECT)
    found["dialogs"] = dialogs
    page.close()
    return found


def assert_inert(found: dict, url: str) -> None:
    assert found["dialogs"] == [], url
    assert found["bad"] == [], url
    assert "<script>alert(1)</script>" in found["text"], url  # the copy is shown, as text


@pytest.mark.parametrize("path", ["/donate", "/donate?variant=b", "/donate?locale=de", "/embed/cta/default.html",
                                  "/embed/cta/default.html?thanks=1", "/embed/cta/default?locale=de"])
def test_server_rendered_pages_show_hostile_copy_as_text(context, live_app, hostile, path):
    _, origin = live_app

    assert_inert(visit(context, origin + path), path)


@pytest.mark.parametrize("reader, locale", [("a", "en"), ("b", "en"), ("a", "de")])
def test_the_embed_script_shows_hostile_copy_as_text(new_context, live_app, hostile, reader, locale):
    _, origin = live_app
    context = new_context(locale=locale)
    # The variant this reader drew before (cta.js keeps it in the site's localStorage).
    context.add_init_script(f"localStorage.setItem('donations:variants', '{{\"default\": \"{reader}\"}}')")

    found = visit(context, f"{origin}/?locale={locale}", wait_for_ask=True)

    assert found["shadows"] == 1
    assert_inert(found, f"demo article, variant {reader}, {locale}")


def test_staff_pages_show_hostile_copy_as_text(context, live_app, hostile):
    from donations.campaigns.models import Campaign
    from donations.extensions import db
    from sqlalchemy import select

    app, origin = live_app
    _, email = make_user(app, "staff")
    with app.app_context():
        campaign = db.session.scalars(select(Campaign).where(Campaign.slug == "default")).one()
        campaign_id, variant_id = campaign.id, campaign.variant("b").id
    page = context.new_page()
    page.goto(f"{origin}/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{origin}/staff/")

    for path in (f"/staff/campaigns/{campaign_id}", f"/staff/campaigns/{campaign_id}/variants/{variant_id}"):
        assert_inert(visit(context, origin + path), path)
