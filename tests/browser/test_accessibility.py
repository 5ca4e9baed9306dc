"""Accessibility in Chromium: axe-core finds no serious or critical violation on the reader's pages (the ask on a
publisher's page, in an iframe and as a fragment; the donation form; the sandbox checkout; the account pages; the
thank-you page) nor on the staff pages readers' gifts go through; the donation form and the checkout work with the
keyboard alone; the overlay and the banner close with Escape; every error is tied to its field."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import delete, select

from donations.campaigns.models import Placement
from tests.browser.conftest import skip_without_chromium
from tests.staff_helpers import PASSWORD, make_user

skip_without_chromium()

pytest.importorskip("axe_playwright_python")
from axe_playwright_python.sync_playwright import Axe  # noqa: E402

AXE = Axe()
#: What a reader cannot get past: axe's "serious" and "critical". "moderate" and "minor" are reported, not failed.
BLOCKING = {"serious", "critical"}


def axe_violations(page, context: str | None = None) -> tuple[list[str], list[str]]:
    """(blocking, others): one line per violation, with the rule, its impact, and the elements it names."""
    results = AXE.run(page, context=context, options={"resultTypes": ["violations"]}) if context \
        else AXE.run(page)
    blocking, others = [], []
    for violation in results.response["violations"]:
        targets = ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        line = f"{violation['id']} ({violation['impact']}): {violation['help']} — {targets}"
        (blocking if violation["impact"] in BLOCKING else others).append(line)
    return blocking, others


def assert_accessible(page, what: str) -> None:
    page.wait_for_load_state("load")
    blocking, others = axe_violations(page)
    print(f"axe on {what}: {len(blocking)} serious/critical; others: {others}")
    assert not blocking, (f"axe on {what} ({page.url}):\n  " + "\n  ".join(blocking)
                          + ("\nalso (moderate/minor):\n  " + "\n  ".join(others) if others else ""))


# -- data ----------------------------------------------------------------------------------------------------

@pytest.fixture
def clean(live_app, campaigns):
    """Gifts made here are committed; afterwards they go (before the campaigns they name), so the other browser
    tests start clean. Staff users stay: the audit log that names them is append-only."""
    yield
    from donations.campaigns.models import Article, AskCount
    from donations.checkout.models import CheckoutAttempt
    from donations.extensions import db
    from donations.ledger.models import Donation, RecurringDonation, Supporter
    from donations.mail.models import OutboxEmail

    with live_app[0].app_context():
        for model in (AskCount, OutboxEmail, Donation, RecurringDonation, CheckoutAttempt, Supporter, Article):
            db.session.execute(delete(model))
        db.session.commit()


@pytest.fixture
def ask(campaigns):
    """The default campaign, the one /donate shows."""
    campaigns("default", headline="Support independent reporting", body="Readers keep us going.")


def give(page, origin: str, email: str = "ada@example.com", card: str = "4242 4242 4242 4242") -> None:
    """A gift of the preset amount through the form and the sandbox checkout, with the mouse."""
    page.goto(f"{origin}/donate")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_role("button", name="Give now").click()
    page.get_by_label("Card number").fill(card)
    page.get_by_role("button", name=re.compile("^Donate")).click()
    page.wait_for_url(re.compile(r".*/thanks.*"))


def manage_url(app, email: str = "ada@example.com") -> str:
    from donations.accounts.tokens import make_token
    from donations.extensions import db
    from donations.ledger.models import Supporter

    with app.app_context():
        supporter = db.session.scalars(select(Supporter).where(Supporter.email == email)).one()
        return f"/account/{make_token(supporter.id, supporter.email)}"


def article(origin: str, *, tag: str = "", body: str = "") -> str:
    paragraphs = "".join(f"<p>Paragraph {n} of the story.</p>" for n in range(1, 5))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>River story</title></head>
<body><main><h1>River story</h1><div id="story">{paragraphs}</div>{body}
<p><a href="#top">Back to the top</a></p></main>
{f'<script src="{origin}/embed/v1/cta.js" data-selector="#story" {tag} async></script>' if tag is not None else ''}
</body></html>"""


def open_ask(page):
    host = page.locator("[data-donations-ask]")
    host.wait_for(state="attached")
    host.locator("section").wait_for()
    return host


# -- axe-core ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("placement", [Placement.INLINE, Placement.BANNER, Placement.OVERLAY])
def test_ask_on_a_publisher_page_has_no_serious_violation(context, campaigns, publisher, live_app, placement):
    campaigns("default", placement=placement, after_paragraph=2, goal_amount=1_000_000, goal_currency="EUR")
    publisher.pages["/a11y/story.html"] = article(live_app[1])
    page = context.new_page()
    page.goto(publisher.origin + "/a11y/story.html")
    open_ask(page)

    assert_accessible(page, f"the {placement.value} ask")


def test_ask_in_an_iframe_and_as_a_fragment_has_no_serious_violation(context, ask, publisher, live_app):
    app, origin = live_app
    page = context.new_page()
    page.goto(f"{origin}/embed/cta/default")
    assert_accessible(page, "the iframe's document")

    with app.test_client() as client:
        fragment = client.get("/embed/cta/default.html").get_data(as_text=True)
    publisher.pages["/a11y/fragment.html"] = article(origin, tag=None, body=fragment)
    publisher.pages["/a11y/iframe.html"] = article(origin, tag=None, body=(
        f'<iframe src="{origin}/embed/cta/default" title="Support our work" width="600" height="320"></iframe>'))
    page.goto(publisher.origin + "/a11y/fragment.html")
    assert_accessible(page, "the HTML fragment in a publisher's page")
    page.goto(publisher.origin + "/a11y/iframe.html")
    page.frame_locator("iframe").locator("form").wait_for()
    assert_accessible(page, "the iframe in a publisher's page")


def test_reader_pages_from_form_to_receipt_have_no_serious_violation(context, ask, live_app, clean):
    app, origin = live_app
    page = context.new_page()
    page.goto(f"{origin}/donate")
    assert_accessible(page, "the donation form")
    page.get_by_label("Email", exact=True).fill("not an address")
    page.get_by_role("button", name="Give now").click()
    page.locator(".errors").first.wait_for()
    assert_accessible(page, "the donation form with errors")

    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_role("button", name="Give now").click()
    page.get_by_label("Card number").wait_for()
    assert_accessible(page, "the sandbox checkout")
    page.get_by_label("Card number").fill("4000 0000 0000 0002")
    page.get_by_role("button", name=re.compile("^Donate")).click()
    page.get_by_role("alert").wait_for()
    assert_accessible(page, "the sandbox checkout with a declined card")
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile("^Donate")).click()
    page.wait_for_url(re.compile(r".*/thanks.*"))
    assert_accessible(page, "the thank-you page")

    page.goto(f"{origin}/account")
    assert_accessible(page, "the request-a-link page")
    page.get_by_label("Your email address").fill("nobody@")
    page.get_by_role("button", name="Email me a link").click()
    page.locator(".errors").wait_for()
    assert_accessible(page, "the request-a-link page with an error")
    page.get_by_label("Your email address").fill("ada@example.com")
    page.get_by_role("button", name="Email me a link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    assert_accessible(page, "the link-sent page")

    page.goto(origin + manage_url(app))
    assert_accessible(page, "the manage page")
    page.locator("table.history a").first.click()
    page.get_by_role("heading", name=re.compile("^Receipt")).wait_for()
    assert_accessible(page, "a receipt")
    page.goto(origin + manage_url(app) + "/erase")
    assert_accessible(page, "the erase page")


def test_staff_pages_have_no_serious_violation(context, ask, live_app, clean):
    app, origin = live_app
    page = context.new_page()
    give(page, origin)
    _, email = make_user(app, "staff")

    page.goto(f"{origin}/staff/login")
    assert_accessible(page, "the staff sign-in")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{origin}/staff/")
    assert_accessible(page, "the staff dashboard")
    page.goto(f"{origin}/staff/supporters")
    assert_accessible(page, "the supporter list")
    page.get_by_role("link", name="ada@example.com").first.click()
    page.wait_for_url(re.compile(r".*/staff/supporters/\d+$"))
    assert_accessible(page, "a supporter's page")
    page.goto(f"{origin}/staff/donations")
    assert_accessible(page, "the donation list")
    page.locator("table tbody a[href*='/staff/donations/']").first.click()
    page.wait_for_url(re.compile(r".*/staff/donations/\d+$"))
    assert_accessible(page, "a gift's page")
