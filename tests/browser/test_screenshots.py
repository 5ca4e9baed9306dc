"""The README's screenshots, taken in Chromium from the app as the browser tests run it: `make screenshots`
(SCREENSHOTS=1) writes docs/screenshots/*.png; otherwise this is skipped. 1280x800, the viewport only.

The data are the demo's (a year of made-up gifts, donations.demo.seed) plus a monthly gift paid through the
sandbox checkout, whose receipt's "Manage your donation" link opens the supporter's account page.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser.conftest import skip_without_chromium
from tests.browser.test_staff_journeys import clean, sign_in  # noqa: F401 (clean is a fixture)
from tests.staff_helpers import make_user, sandbox_gift

skip_without_chromium()

pytestmark = pytest.mark.skipif(os.environ.get("SCREENSHOTS") != "1",
                                reason="writes docs/screenshots/ only when asked: SCREENSHOTS=1 (make screenshots)")

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
ARTICLE_PATH = "/news/river-towns.html"


def article(origin: str) -> str:
    """The publisher's article, styled a little as a news site is; the ask goes after the second paragraph."""
    paragraphs = [
        "When the river rose over its banks last spring, the libraries of the three river towns lost most of "
        "their ground floors. A year on, two of them have reopened, and the third is taking shape in a former "
        "grain store.",
        "The rebuilding was paid for by a mix of insurance money, a regional grant and, in Millford, a "
        "collection that raised more than its organisers had dared to hope.",
        "Volunteers dried and catalogued what could be saved. Some of the oldest parish records went to a "
        "conservation workshop in the capital and are expected back in the autumn.",
        "The towns' councils now plan to raise the flood walls along the quays, a project our newsroom will "
        "follow as it goes to tender.",
    ]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The Riverside Chronicle</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:18px/1.6 Georgia,serif;margin:0;color:#222;background:#fafaf7}}
header{{background:#123;color:#fff;padding:.8rem 2rem;font:700 1.4rem system-ui,sans-serif}}
main{{max-width:44rem;margin:1.5rem auto;padding:0 1rem}} h1{{font-size:2rem;line-height:1.2}}</style></head>
<body><header>The Riverside Chronicle</header><main><h1>How the river towns rebuilt their libraries</h1>
<div id="story">{body}</div></main>
<script src="{origin}/embed/v1/cta.js" data-selector="#story" data-after-paragraph="2" async></script></body></html>"""


def test_readme_screenshots(new_context, live_app, publisher, campaigns, mailbox, clean):
    from donations import demo
    from donations.extensions import db

    app, origin = live_app
    OUT.mkdir(parents=True, exist_ok=True)
    campaigns("default", headline="Consider donating to support our work",
              body="The Riverside Chronicle is free to read and answers to no owner. Our reporting is paid for by "
                   "readers like you.", goal_amount=1_000_000, goal_currency="EUR")
    with app.app_context():
        demo.seed()
        db.session.commit()
    sandbox_gift(app, amount="10.00", email="grace@example.com", frequency="monthly")
    (receipt,) = mailbox.deliver(app)
    manage_url = re.search(r"https?://\S+/account/\S+", receipt.get_body(("plain",)).get_content()).group(0)
    publisher.pages[ARTICLE_PATH] = article(origin)

    try:
        reader = new_context(viewport=VIEWPORT).new_page()
        reader.goto(publisher.origin + ARTICLE_PATH)
        host = reader.locator("[data-donations-ask]")
        host.wait_for(state="attached")
        host.locator("h2").wait_for()
        reader.screenshot(path=OUT / "article-ask.png")

        host.get_by_role("button").last.click()
        reader.wait_for_url(f"{origin}/donate*")
        reader.get_by_role("textbox", name="Email").fill("ada@example.com")
        reader.screenshot(path=OUT / "donation-form.png")

        reader.locator("form.donate button[type=submit]").click()
        reader.get_by_label(re.compile("Card number", re.I)).fill("4242 4242 4242 4242")
        reader.screenshot(path=OUT / "sandbox-checkout.png")

        supporter = new_context(viewport=VIEWPORT).new_page()
        supporter.goto(manage_url)
        supporter.get_by_role("heading").first.wait_for()
        supporter.screenshot(path=OUT / "account-manage.png")

        _, email = make_user(app, "admin", email="editor@example.org")
        staff = new_context(viewport=VIEWPORT).new_page()
        sign_in(staff, origin, email)
        staff.screenshot(path=OUT / "staff-dashboard.png")
    finally:
        publisher.pages.pop(ARTICLE_PATH, None)

    for name in ("article-ask", "donation-form", "sandbox-checkout", "account-manage", "staff-dashboard"):
        assert (OUT / f"{name}.png").stat().st_size > 10_000, name  # a picture, not an empty page
