"""The issue's whole story in Chromium: a staff member sets up a two-variant campaign placed after the third
paragraph of the demo article; two readers see it (one per variant), one of them gives in the sandbox; staff
then see the impressions and the gift per variant (conversion, probability to beat) and per article."""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import delete, func, select

from tests.browser.conftest import fnv_share, skip_without_chromium, wipe_committed
from tests.staff_helpers import PASSWORD, make_user

skip_without_chromium()

SLUG = "spring"


@pytest.fixture
def clean(live_app):
    """The journey commits gifts; afterwards they and its campaign go, so the other browser tests start clean."""
    yield
    from donations.campaigns.models import Campaign
    from donations.extensions import db

    wipe_committed(live_app[0])
    with live_app[0].app_context():
        db.session.execute(delete(Campaign).where(Campaign.slug == SLUG))
        db.session.commit()

def row(page, table: str, first_cell: str) -> list[str]:
    """The cells of the row of ``table`` whose first cell contains ``first_cell``."""
    found = page.locator(f"{table} tbody tr").filter(has_text=first_cell)
    return [cell.strip() for cell in found.first.locator("th, td").all_inner_texts()]


def test_two_variant_campaign_from_setup_to_figures_per_variant_and_article(new_context, live_app, clean):
    app, origin = live_app
    _, email = make_user(app, "admin")

    # -- staff set the campaign up -------------------------------------------------------------------------
    staff = new_context().new_page()
    staff.goto(f"{origin}/staff/login")
    staff.get_by_label("Email").fill(email)
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_role("button", name="Sign in").click()
    staff.goto(f"{origin}/staff/campaigns")
    staff.get_by_label("Slug").fill(SLUG)
    staff.get_by_label("Name").fill("Spring appeal")
    staff.get_by_label("Language").fill("en")
    staff.get_by_role("button", name="Create").click()
    staff.wait_for_url(re.compile(r".*/staff/campaigns/\d+$"))
    campaign_page = staff.url

    settings = staff.locator("form#settings")
    settings.get_by_label("Active").check()
    settings.get_by_label(re.compile("^Priority")).fill("10")
    settings.get_by_label("Placement").select_option("inline")
    settings.get_by_label(re.compile("^After paragraph")).fill("3")
    settings.get_by_role("button", name="Save settings").click()
    staff.wait_for_load_state()

    variant = staff.locator("form#new-variant")
    variant.get_by_label(re.compile("^Key")).fill("b")
    variant.get_by_label("Name").fill("Urgent")
    variant.get_by_label("Headline").fill("Help us keep reporting this spring")
    variant.get_by_role("button", name="Add variant").click()
    staff.wait_for_url(re.compile(r".*/variants/\d+$"))  # the new variant's page, for its translations
    staff.goto(campaign_page)
    assert staff.locator("table#variants tbody tr").all_inner_texts()[1].startswith("b")

    # -- two readers on the demo article, one per variant (their random ids decide) ---------------------------
    ids = [f"reader-{n}" for n in range(50)]
    readers = {"a": next(i for i in ids if fnv_share(i, SLUG) < 0.5),
               "b": next(i for i in ids if fnv_share(i, SLUG) >= 0.5)}
    pages = {}
    for key, reader in readers.items():
        context = new_context()
        context.add_init_script(f"localStorage.setItem('donations:id', '\"{reader}\"')")
        page = context.new_page()
        host = page.locator(f"[data-donations-ask='{SLUG}']")
        # The impression goes out once the ask is in view (at once here, or after scrolling on a small screen).
        with page.expect_response(f"{origin}/embed/v1/count") as counted:
            page.goto(f"{origin}/")
            host.wait_for(state="attached")
            host.scroll_into_view_if_needed()
        assert counted.value.status == 204
        assert host.get_attribute("data-variant") == key
        # After the third paragraph of the article body.
        assert page.evaluate("document.querySelector('#article-body > p:nth-of-type(3)').nextElementSibling"
                             ".getAttribute('data-donations-ask')") == SLUG
        pages[key] = (page, host)

    page, host = pages["b"]
    assert host.locator("h2").inner_text() == "Help us keep reporting this spring"
    host.get_by_label("€25.00").check()
    # The click goes out as a beacon while the page navigates away; Chromium does not always report the
    # response of a request from a page being unloaded, so the test waits for the click in the database.
    host.get_by_role("button").last.click()
    page.wait_for_url(f"{origin}/donate*")
    page.get_by_role("textbox", name="Email").fill("ada@example.com")
    page.locator("form.donate button[type=submit]").click()
    page.get_by_label(re.compile("Card number", re.I)).fill("4242 4242 4242 4242")
    page.locator("form.donate button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/(thanks|donate/thanks).*"))

    from donations.campaigns.models import Article, Campaign
    from donations.extensions import db
    from donations.ledger.models import Donation

    from donations.campaigns.models import AskCount

    with app.app_context():
        deadline = time.monotonic() + 10
        while not db.session.scalar(select(func.sum(AskCount.clicks))) and time.monotonic() < deadline:
            db.session.rollback()
            time.sleep(0.05)
        assert db.session.scalar(select(func.sum(AskCount.clicks))) == 1
        gift = db.session.scalars(select(Donation)).one()
        campaign = db.session.scalars(select(Campaign).where(Campaign.slug == SLUG)).one()
        assert (gift.amount, gift.currency, gift.campaign_id) == (2500, "EUR", campaign.id)
        assert gift.variant_id == campaign.variant("b").id
        assert db.session.get(Article, gift.article_id).url == f"{origin}/"

    # -- staff see it per variant and per article ------------------------------------------------------------
    staff.goto(campaign_page)
    a, b = row(staff, "#ab-table", "a ·"), row(staff, "#ab-table", "b ·")
    # Variant, share, impressions, clicks, gifts, click-through, conversion, per 1,000, recurring, P(beat)
    assert a[2:5] == ["1", "0", "0"] and b[2:5] == ["1", "1", "1"]
    assert b[6] == "100.00 %" and a[6] == "0.00 %"
    assert b[7] == "€25,000.00"
    # Beta(2, 1) against Beta(1, 2): P(b converts better) = 5/6.
    assert (a[9], b[9]) == ("16.7 %", "83.3 %")
    assert "Not enough data yet" in staff.locator("#ab-verdict").inner_text()

    staff.goto(f"{origin}/staff/articles")
    article = row(staff, "table", "How the river towns rebuilt")
    # Article, section, author, impressions, clicks, gifts, conversion, money raised
    assert article[1:7] == ["Local life", "A. Reporter", "2", "1", "1", "50.00%"]
    assert "€25.00" in article[7]
