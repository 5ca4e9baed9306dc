"""Accessibility in Chromium: axe-core finds no serious or critical violation on the reader's pages (the ask on a
publisher's page, in an iframe and as a fragment; the donation form; the sandbox checkout; the account pages; the
thank-you page) nor on the staff pages readers' gifts go through; the donation form and the checkout work with the
keyboard alone; the overlay and the banner close with Escape; every error is tied to its field."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from donations.campaigns.models import Placement
from tests.browser.conftest import skip_without_chromium, wipe_committed
from tests.staff_helpers import PASSWORD, make_user

skip_without_chromium()

pytest.importorskip("axe_playwright_python")
from axe_playwright_python.sync_playwright import Axe  # noqa: E402

AXE = Axe()
#: What a reader cannot get past: axe's "serious" and "critical". "moderate" and "minor" are reported, not failed.
BLOCKING = {"serious", "critical"}


def axe_violations(page) -> tuple[list[str], list[str]]:
    """(blocking, others): one line per violation, with the rule, its impact, and the elements it names; axe
    walks open shadow roots (the ask's) as well."""
    results = AXE.run(page)
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
    tests start clean."""
    yield
    wipe_committed(live_app[0])

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

def test_axe_reports_what_these_tests_guard_against(context, publisher):
    """The checks below can fail: axe in this Chromium finds an unlabelled field and pale text."""
    publisher.pages["/a11y/bad.html"] = """<!doctype html><html lang="en"><head><title>Bad</title></head><body><main>
<h1>Bad</h1><p style="color:#bbb;background:#fff">Pale text</p><form><input type="text" name="q"></form></main></body></html>"""
    page = context.new_page()
    page.goto(publisher.origin + "/a11y/bad.html")

    blocking, _ = axe_violations(page)

    assert sorted(line.split(" ")[0] for line in blocking) == ["color-contrast", "label"]


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


# -- the keyboard alone --------------------------------------------------------------------------------------

#: What has the focus (through open shadow roots), and whether it shows: its own outline or box-shadow, or that of
#: the label that wraps it (the ask rings the whole amount "chip").
FOCUSED = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  const shows = (node) => {
    if (!node) return false;
    const s = getComputedStyle(node);
    return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
  };
  const name = el.labels && el.labels.length ? el.labels[0].innerText.trim()
    : (el.getAttribute('aria-label') || el.innerText || el.value || '').trim();
  return {tag: el.tagName.toLowerCase(), type: el.type || '', name: el.name || '', label: name,
          checked: !!el.checked, visible: el === document.body || shows(el) || shows(el.closest('label'))};
}"""


def focused(page) -> dict:
    return page.evaluate(FOCUSED)


def tab(page, key: str = "Tab") -> dict:
    """Presses Tab (or another key) and returns what has the focus then; fails if the focus does not show."""
    page.keyboard.press(key)
    now = focused(page)
    assert now["visible"], f"no visible focus indicator on {now}"
    return now


def tab_to(page, predicate, limit: int = 30) -> list[dict]:
    """Tabs until ``predicate(focused)``; returns every stop on the way (the last one included)."""
    stops = []
    for _ in range(limit):
        stops.append(tab(page))
        if predicate(stops[-1]):
            return stops
    raise AssertionError(f"never reached; stops: {stops}")


def test_a_gift_from_form_to_thanks_with_the_keyboard_alone(context, ask, live_app, clean):
    app, origin = live_app
    page = context.new_page()
    page.goto(f"{origin}/donate")

    # The whole form in reading order, the honeypot out of reach, the amount radios one stop.
    stops = tab_to(page, lambda f: f["tag"] == "button")
    assert [s["name"] or s["label"] for s in stops] == [
        "The Riverside Chronicle", "Monthly", "Yearly", "USD", "GBP", "amount", "custom_amount", "email", "name",
        "cover_fees", "mailing_consent", "Give now"]
    page.keyboard.press("Shift+Tab")  # back up to the amounts: Shift+Tab walks the same order backwards
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
    assert focused(page) | {"visible": True} == {"tag": "input", "type": "radio", "name": "amount",
                                                  "label": "€25.00", "checked": True, "visible": True}
    assert tab(page, "ArrowRight")["label"] == "€50.00"  # an arrow key moves the choice, as in any radio group
    assert tab(page)["name"] == "custom_amount"
    assert tab(page)["name"] == "email"
    page.keyboard.type("kay@example.com")
    assert tab(page)["name"] == "name"
    page.keyboard.type("Kay Board")
    assert tab(page)["name"] == "cover_fees"
    assert tab(page)["name"] == "mailing_consent"
    assert tab(page)["label"] == "Give now"
    page.keyboard.press("Enter")

    # The sandbox checkout: the card, the button, the way back, in that order.
    page.wait_for_url(re.compile(r".*/sandbox/checkout/.*"))
    stops = tab_to(page, lambda f: f["tag"] == "a" and f["label"] != "The Riverside Chronicle")
    assert [s["name"] or s["label"] for s in stops] == [
        "The Riverside Chronicle", "card_number", "Donate €50.00", "Cancel and go back"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page)["name"] == "card_number"
    page.keyboard.type("4242 4242 4242 4242")
    assert tab(page)["label"] == "Donate €50.00"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/thanks.*"))
    page.locator("#donation-status[data-status=succeeded]").wait_for()

    from donations.extensions import db
    from donations.ledger.models import Donation

    with app.app_context():
        gift = db.session.scalars(select(Donation)).one()
        assert (gift.amount, gift.currency, gift.supporter.email, gift.supporter.name) == (
            5000, "EUR", "kay@example.com", "Kay Board")


def test_the_inline_ask_is_reached_and_used_with_tab_and_arrows(context, campaigns, publisher, live_app):
    campaigns("default", after_paragraph=2)
    publisher.pages["/a11y/story.html"] = article(live_app[1])
    page = context.new_page()
    page.goto(publisher.origin + "/a11y/story.html")
    open_ask(page)

    # The page's own link comes after the ask, which stands after the second paragraph.
    stops = tab_to(page, lambda f: f["tag"] == "a" and f["label"] == "Back to the top")
    assert [s["name"] or s["label"] for s in stops] == ["amount", "Give now", "or give monthly", "Back to the top"]
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert focused(page)["label"] == "€25.00"
    assert tab(page, "ArrowLeft")["label"] == "€10.00"
    tab(page)
    with page.expect_navigation(url=re.compile(rf"{re.escape(live_app[1])}/donate\?.*amount=10\.00")):
        page.keyboard.press("Enter")


def closed_and_focus_back(page) -> None:
    page.locator("[data-donations-ask]").wait_for(state="detached")
    assert page.evaluate("document.activeElement === document.body")
    # The page goes on from its start: the next Tab lands on the page's own first link.
    assert tab(page)["label"] == "Back to the top"


def test_the_overlay_closes_with_escape_or_its_close_button_and_gives_the_focus_back(
        context, campaigns, publisher, live_app):
    campaigns("default", placement=Placement.OVERLAY)
    publisher.pages["/a11y/story.html"] = article(live_app[1])
    page = context.new_page()
    for close in ("Escape", "Enter", " "):
        page.goto(publisher.origin + "/a11y/story.html")
        open_ask(page).locator("dialog[open]").wait_for()
        # The dialog takes the focus on its close button, visibly; while it is open the page behind is out of
        # reach (a modal dialog makes it inert): past the dialog's last control the focus leaves the document, to
        # the browser's own controls, and comes back to the dialog.
        assert focused(page)["label"] == "Close" and focused(page)["visible"]
        stops = [tab(page) for _ in range(5)]
        assert [s["name"] or s["label"] for s in stops[:3]] == ["amount", "Give now", "or give monthly"]
        assert stops[3]["tag"] == "body" and stops[4]["label"] == "Close"
        page.keyboard.press(close)  # Escape anywhere in it, or Enter or Space on the close button
        closed_and_focus_back(page)


def test_the_banner_is_reached_by_tab_and_closes_with_escape_or_its_close_button(
        context, campaigns, publisher, live_app):
    campaigns("default", placement=Placement.BANNER)
    publisher.pages["/a11y/story.html"] = article(live_app[1])
    page = context.new_page()
    for close in ("Escape", "Enter"):
        page.goto(publisher.origin + "/a11y/story.html")
        open_ask(page)
        # After the page's own content, as it comes last in the document.
        stops = tab_to(page, lambda f: f["label"] == "Close")
        assert [s["name"] or s["label"] for s in stops] == ["Back to the top", "Close"]
        assert [tab(page)["name"] or focused(page)["label"] for _ in range(3)] == [
            "amount", "Give now", "or give monthly"]
        if close == "Enter":
            for _ in range(3):
                page.keyboard.press("Shift+Tab")
            assert focused(page)["label"] == "Close"
        page.keyboard.press(close)
        closed_and_focus_back(page)


# -- labels and errors tied to their fields ------------------------------------------------------------------

#: Every control a reader can reach, with its accessible name's source: its label(s), aria-label or aria-labelledby.
CONTROLS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter((el) => el.type !== 'hidden' && el.tabIndex >= 0 && !el.closest('[aria-hidden=true]'))
  .map((el) => ({name: el.name, id: el.id, type: el.type,
                 label: el.labels && el.labels.length ? el.labels[0].innerText.trim()
                        : (el.getAttribute('aria-label') || '')}))"""

#: Each error message on the page, and the fields that name it.
ERRORS = """() => Array.from(document.querySelectorAll('.errors, [role=alert][id]')).map((error) => ({
  id: error.id, text: error.innerText.trim(),
  fields: Array.from(document.querySelectorAll('[aria-describedby]'))
    .filter((f) => f.getAttribute('aria-describedby').split(/\\s+/).includes(error.id))
    .map((f) => ({name: f.name, invalid: f.getAttribute('aria-invalid')}))}))"""


def assert_every_control_labelled(page) -> list[str]:
    """Each control has a name, and get_by_label finds that very control by it; returns the names."""
    controls = page.evaluate(CONTROLS)
    assert controls, f"no controls on {page.url}"
    for control in controls:
        assert control["label"], f"{control} has no label on {page.url}"
        found = page.get_by_label(control["label"], exact=True)
        assert control["id"] in found.evaluate_all("els => els.map((e) => e.id)"), control
    return [c["label"] for c in controls]


def assert_errors_tied(page, expected: dict[str, str]) -> None:
    """``expected`` maps each invalid field's name to a piece of its message: each message has an id, its field
    names it in aria-describedby and says aria-invalid="true", and the first of them has the focus, so that a
    screen reader reads that field and its message as the page opens."""
    errors = {e["id"]: e for e in page.evaluate(ERRORS)}
    tied = {f["name"]: e for e in errors.values() for f in e["fields"] if f["invalid"] == "true"}
    assert set(tied) == set(expected), errors
    for name, text in expected.items():
        assert tied[name]["id"] and text in tied[name]["text"], (name, tied[name])
    # Chromium applies autofocus at its next rendering step, a moment after the page has loaded.
    first = next(iter(expected))
    try:
        page.wait_for_function("(name) => document.activeElement && document.activeElement.name === name", arg=first)
    finally:
        assert focused(page)["name"] == first


def test_donation_form_errors_are_tied_to_their_fields_and_the_first_takes_the_focus(context, ask, live_app, clean):
    page = context.new_page()
    page.goto(f"{live_app[1]}/donate")
    assert assert_every_control_labelled(page)[-5:] == [
        "Other amount", "Email", "Name (optional)", "Add the processing fee so that all of my gift arrives",
        page.locator("#mailing_consent").evaluate("e => e.labels[0].innerText.trim()")]

    page.get_by_label("Other", exact=True).check()
    page.get_by_label("Other amount").fill("0.10")
    page.get_by_label("Email", exact=True).fill("not an address")
    page.get_by_role("button", name="Give now").click()
    page.locator(".errors").first.wait_for()

    assert_errors_tied(page, {"custom_amount": "", "email": "email"})
    assert page.get_by_role("alert").first.inner_text() == "Please check the fields marked below."
    assert page.get_by_label("Email", exact=True).get_attribute("aria-describedby") == "email-hint email-error"
    # The amount fixed, the email still wrong: the form comes back with only the email marked.
    page.get_by_label("Other amount").fill("12")
    page.get_by_label("Email", exact=True).fill("ada@example")
    with page.expect_navigation():
        page.get_by_role("button", name="Give now").click()
    assert_errors_tied(page, {"email": "email"})
    assert page.get_by_label("Other amount").get_attribute("aria-invalid") is None


@pytest.mark.parametrize("card, message", [("4000 0000 0000 0002", "declined"), ("1234", "")])
def test_checkout_card_errors_are_tied_to_the_card_field(context, ask, live_app, clean, card, message):
    page = context.new_page()
    page.goto(f"{live_app[1]}/donate")
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_role("button", name="Give now").click()
    page.get_by_label("Card number").wait_for()  # the checkout, not the form it left
    assert assert_every_control_labelled(page) == ["Card number"]
    assert page.get_by_label("Card number").get_attribute("aria-invalid") is None

    page.get_by_label("Card number").fill(card)
    page.get_by_role("button", name=re.compile("^Donate")).click()
    page.get_by_role("alert").wait_for()

    assert_errors_tied(page, {"card_number": message})
    assert page.get_by_label("Card number").get_attribute("aria-describedby") == "card-hint card-error"


def test_request_link_error_is_tied_to_the_email_field(context, live_app):
    page = context.new_page()
    page.goto(f"{live_app[1]}/account")
    assert assert_every_control_labelled(page) == ["Your email address"]
    page.get_by_label("Your email address").fill("nobody@")
    page.get_by_role("button", name="Email me a link").click()
    page.locator(".errors").wait_for()

    assert_errors_tied(page, {"email": ""})


def test_manage_page_of_a_monthly_gift_ties_a_refused_amount_to_its_field(context, ask, live_app, clean):
    app, origin = live_app
    page = context.new_page()
    page.goto(f"{origin}/donate?frequency=monthly")
    page.get_by_label("€5.00").check()
    page.get_by_label("Email", exact=True).fill("mo@example.com")
    page.get_by_role("button", name="Donate monthly").click()
    page.get_by_label("Card number").wait_for()
    assert_accessible(page, "the sandbox checkout of a monthly gift")
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile("^Subscribe")).click()
    page.wait_for_url(re.compile(r".*/thanks.*"))

    page.goto(origin + manage_url(app, "mo@example.com"))
    page.locator("section.gift").wait_for()
    assert_accessible(page, "the manage page of a monthly gift")
    page.get_by_text("Change amount or frequency").click()
    page.locator("summary", has_text="Pause").click()
    assert_every_control_labelled(page)
    assert page.get_by_label(re.compile(r"^Amount \(EUR\)")).get_attribute("aria-invalid") is None

    page.get_by_label(re.compile(r"^Amount \(EUR\)")).fill("a lot")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("alert").wait_for()

    field = page.get_by_label(re.compile(r"^Amount \(EUR\)"))
    assert field.is_visible()  # its <details> open
    assert field.get_attribute("aria-invalid") == "true"
    message = page.locator(f"#{field.get_attribute('aria-describedby')}")
    assert message.get_attribute("role") == "alert" and message.inner_text()
    page.wait_for_function("document.activeElement && document.activeElement.name === 'amount'")
    assert_accessible(page, "the manage page with a refused amount")
    # Reloaded, the message is gone, and so is the mark.
    page.reload()
    assert page.locator("[aria-invalid]").count() == 0


def test_manage_page_fits_a_375px_phone_and_its_tables_scroll_on_their_own(new_context, ask, live_app, clean):
    app, origin = live_app
    page = new_context(viewport={"width": 375, "height": 740}).new_page()
    give(page, origin, email="phone@example.com")
    page.goto(f"{origin}/donate?frequency=monthly")
    page.get_by_label("€5.00").check()
    page.get_by_label("Email", exact=True).fill("phone@example.com")
    page.get_by_role("button", name="Donate monthly").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_role("button", name=re.compile("^Subscribe")).click()
    page.wait_for_url(re.compile(r".*/thanks.*"))

    page.goto(origin + manage_url(app, "phone@example.com"))
    page.locator("section.gift").wait_for()

    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # the page itself does not scroll sideways
    region = page.get_by_role("region", name="Every gift")
    assert region.get_attribute("tabindex") == "0"  # a keyboard reaches what scrolls
    assert region.locator("table tbody tr").count() == 2
    assert region.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert_accessible(page, "the manage page at 375px")
