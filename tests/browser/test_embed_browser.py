"""The embed script in Chromium, on a publisher's page served from another origin: which campaign, which
variant, where it stands, the cap, the counts it sends and the donation link it builds."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from donations.campaigns.models import Placement
from tests.browser.conftest import fnv_share, skip_without_chromium

skip_without_chromium()  # before the app and the database are set up for nothing

PARAGRAPHS = 6


def article(origin: str, *, lang: str = "en", section: str | None = "Local life", tag: str = "",
            paragraphs: int = PARAGRAPHS, spacer: bool = False) -> str:
    """A publisher's article with the tag after its body, as a CMS would put it."""
    meta = f'<meta property="article:section" content="{section}">' if section else ""
    body = "".join(f"<p>Paragraph {n} of the story.</p>" for n in range(1, paragraphs + 1))
    tall = '<div style="height:3000px">Comments</div>' if spacer else ""
    return f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>River story</title>{meta}
<meta name="author" content="A. Reporter"><meta property="og:title" content="How the towns rebuilt"></head>
<body><h1>River story</h1>{tall}<div id="story">{body}</div>
<script src="{origin}/embed/v1/cta.js" data-selector="#story" {tag} async></script></body></html>"""


@pytest.fixture
def publish(publisher, live_app):
    """Puts an article on the publisher's origin; returns its URL."""
    _, origin = live_app

    def put(path: str = "/news/story.html", **kwargs) -> str:
        publisher.pages[path] = article(origin, **kwargs)
        return publisher.origin + path

    return put


def ask(page):
    """The ask's host element, once the script has placed it."""
    host = page.locator("[data-donations-ask]")
    host.wait_for(state="attached")
    return host


def no_ask(page) -> bool:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(200)
    return page.locator("[data-donations-ask]").count() == 0


def count_beacons(context, origin: str) -> list[dict]:
    """The bodies the page sends to the counting endpoint (answered here as the endpoint would: 204)."""
    sent: list[dict] = []

    def answer(route):
        sent.append(json.loads(route.request.post_data))
        route.fulfill(status=204)

    context.route(f"{origin}/embed/v1/count", answer)
    return sent


def wait_for_beacons(page, sent: list[dict], count: int, seconds: float = 5) -> list[dict]:
    """``sent`` once it holds ``count`` beacons, or after ``seconds``: the route handler runs only while
    Playwright waits, and a beacon sent as the page unloads (the click's) may reach it late."""
    deadline = time.monotonic() + seconds
    while len(sent) < count and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return sent


# -- placement ---------------------------------------------------------------------------------------

def test_ask_lands_after_the_third_paragraph_on_a_publisher_page(context, campaigns, publish, live_app):
    campaigns("spring", after_paragraph=3, goal_amount=1_000_000, goal_currency="EUR")
    page = context.new_page()
    page.goto(publish())

    host = ask(page)

    assert page.evaluate("document.querySelector('#story > p:nth-of-type(3)').nextElementSibling"
                         ".getAttribute('data-donations-ask')") == "spring"
    assert host.locator("h2").inner_text() == "Headline spring"
    assert host.locator("p#dn-goal").inner_text() == "€0 of €10,000 this month"
    assert host.locator("progress").get_attribute("value") == "0"
    assert host.locator("label").all_inner_texts()[:3] == ["€10.00", "€25.00", "€50.00"]
    # Server text went in as text: the page has no element the ask's copy could have smuggled in.
    assert page.evaluate("document.querySelector('[data-donations-ask]').shadowRoot.innerHTML").count("<script") == 0


def test_demo_article_places_the_ask_after_its_third_paragraph(context, campaigns, live_app):
    campaigns("demo", after_paragraph=3)
    page = context.new_page()
    page.goto(live_app[1] + "/")

    ask(page)

    assert page.evaluate("document.querySelector('#article-body > p:nth-of-type(3)').nextElementSibling"
                         ".getAttribute('data-donations-ask')") == "demo"


def test_without_after_paragraph_the_ask_stands_where_the_tag_is(context, campaigns, publish):
    campaigns("here")
    page = context.new_page()
    page.goto(publish())

    ask(page)

    assert page.evaluate("document.querySelector('script[data-selector]').previousElementSibling"
                         ".getAttribute('data-donations-ask')") == "here"


def test_banner_sits_at_the_bottom_of_the_window(context, campaigns, publish):
    campaigns("banner", placement=Placement.BANNER)
    page = context.new_page()
    page.goto(publish())

    box = ask(page).locator("section").bounding_box()

    assert box["y"] + box["height"] == pytest.approx(page.viewport_size["height"], abs=1)


# -- variants ----------------------------------------------------------------------------------------

TWO_VARIANTS = [{"key": "b", "headline": "Variant B says", "weight": 1}]


def test_variant_is_stable_across_reloads(context, campaigns, publish):
    campaigns("ab", variants=TWO_VARIANTS)
    page = context.new_page()
    url = publish()
    page.goto(url)
    first = ask(page).get_attribute("data-variant")

    seen = set()
    for _ in range(4):
        page.reload()
        seen.add(ask(page).get_attribute("data-variant"))

    assert seen == {first}
    assert json.loads(page.evaluate("localStorage.getItem('donations:variants')")) == {"ab": first}


def test_readers_with_different_ids_get_the_variant_their_id_draws_under_a_50_50_split(new_context, campaigns,
                                                                                      publish):
    campaigns("ab", variants=TWO_VARIANTS)
    ids = [f"reader-{n}" for n in range(50)]
    reader_a = next(i for i in ids if fnv_share(i, "ab") < 0.5)
    reader_b = next(i for i in ids if fnv_share(i, "ab") >= 0.5)
    url = publish()

    got = {}
    for reader in (reader_a, reader_b):
        context = new_context()
        context.add_init_script(f"localStorage.setItem('donations:id', {json.dumps(json.dumps(reader))})")
        page = context.new_page()
        page.goto(url)
        got[reader] = ask(page).get_attribute("data-variant")

    assert got == {reader_a: "a", reader_b: "b"}


def test_a_variant_of_weight_zero_is_shown_to_nobody(new_context, campaigns, publish):
    campaigns("forced", variants=[{"key": "a", "weight": 0}, {"key": "b", "headline": "Only B", "weight": 1}])
    url = publish()

    shown = []
    for _ in range(3):
        page = new_context().new_page()
        page.goto(url)
        shown.append(ask(page).locator("h2").inner_text())

    assert shown == ["Only B"] * 3


# -- rules -------------------------------------------------------------------------------------------

@pytest.fixture
def ruled(campaigns):
    campaigns("politics", sections=["Politics"], priority=3)
    campaigns("sport", url_patterns=["/sport/*"], priority=2)
    campaigns("german", languages=["de"], priority=1)
    campaigns("everywhere", priority=0)


@pytest.mark.parametrize("path, kwargs, shown", [
    ("/news/a.html", {"section": "politics"}, "politics"),  # sections match regardless of case
    ("/sport/match.html", {"section": "Sport"}, "sport"),
    ("/news/b.html", {"lang": "de-AT", "section": None}, "german"),
    ("/news/c.html", {"section": "Local life"}, "everywhere"),
    ("/news/d.html", {"tag": 'data-campaign="german"'}, "german"),  # pinned: the page rules do not apply
])
def test_rules_choose_the_highest_priority_campaign_for_the_page(context, ruled, publish, path, kwargs, shown):
    page = context.new_page()
    page.goto(publish(path, **kwargs))

    assert ask(page).get_attribute("data-donations-ask") == shown


def test_no_matching_campaign_means_no_ask(context, campaigns, publish):
    campaigns("politics", sections=["Politics"])
    page = context.new_page()
    page.goto(publish(section="Sport"))

    assert no_ask(page)


def test_campaign_hidden_from_supporters_gives_way_and_the_inline_ask_thanks_them(context, campaigns, publish):
    campaigns("appeal", hide_from_supporters=True, priority=5)
    campaigns("regular", thank_you="Thank you, you keep us going.")
    page = context.new_page()
    url = publish()

    page.goto(url)
    assert ask(page).get_attribute("data-donations-ask") == "appeal"

    page.goto("about:blank")
    page.goto(url + "#donations-thanks=monthly")  # the thank-you page sends the reader back so
    host = ask(page)

    assert host.get_attribute("data-donations-ask") == "regular"
    assert host.locator("section").inner_text() == "Thank you, you keep us going."
    assert host.locator("form").count() == 0
    assert "#" not in page.url  # the mark is kept in storage, not in the address


# -- overlay and cap -------------------------------------------------------------------------------------

def test_overlay_takes_focus_escape_closes_it_and_the_cap_holds_it_back_next_time(context, campaigns, publish):
    campaigns("overlay", placement=Placement.OVERLAY, cap_views=1, cap_days=7)
    page = context.new_page()
    url = publish()
    page.goto(url)

    host = ask(page)
    host.locator("dialog[open]").wait_for()
    assert page.evaluate("document.activeElement.getAttribute('data-donations-ask')") == "overlay"
    assert page.evaluate("document.activeElement.shadowRoot.activeElement.className") == "close"

    page.keyboard.press("Escape")
    page.locator("[data-donations-ask]").wait_for(state="detached")
    assert page.evaluate("document.activeElement === document.body")

    page.reload()
    assert no_ask(page)


def test_closing_a_banner_counts_towards_its_cap(context, campaigns, publish):
    campaigns("banner", placement=Placement.BANNER, cap_views=2, cap_days=1)
    page = context.new_page()
    url = publish()

    for _ in range(2):
        page.goto(url)
        ask(page).get_by_role("button", name="Close").click()
        page.locator("[data-donations-ask]").wait_for(state="detached")
    page.goto(url)

    assert no_ask(page)


# -- counting and the donation link ------------------------------------------------------------------------

def test_impression_is_sent_only_once_the_ask_is_scrolled_into_view(context, campaigns, publish, live_app):
    campaigns("seen", after_paragraph=3)
    sent = count_beacons(context, live_app[1])
    page = context.new_page()
    url = publish(spacer=True)
    page.goto(url + "?utm_source=news&reader=42#top")
    host = ask(page)
    page.wait_for_timeout(500)
    assert sent == []

    with page.expect_request(f"{live_app[1]}/embed/v1/count"):
        host.scroll_into_view_if_needed()
    page.mouse.wheel(0, -4000)
    page.wait_for_timeout(300)
    host.scroll_into_view_if_needed()
    page.wait_for_timeout(300)

    # Of the query only where the reader came from; no fragment.
    assert sent == [{"type": "impression", "campaign": "seen", "variant": "a", "url": url + "?utm_source=news",
                     "section": "Local life", "author": "A. Reporter", "title": "How the towns rebuilt"}]


def test_the_button_sends_a_click_and_goes_to_the_donation_link(context, campaigns, publish, live_app):
    campaigns("give", variants=[{"key": "a", "weight": 0}, {"key": "b", "weight": 1}])
    sent = count_beacons(context, live_app[1])
    page = context.new_page()
    url = publish()
    with page.expect_request(f"{live_app[1]}/embed/v1/count"):  # the impression, before anything is clicked
        page.goto(url)
        host = ask(page)
    host.get_by_label("€50.00").check()

    with page.expect_navigation(url=f"{live_app[1]}/donate*"):
        host.get_by_role("button", name="Give now").click()

    query = parse_qs(urlsplit(page.url).query)
    assert query == {"campaign": ["give"], "variant": ["b"], "article_url": [url], "currency": ["EUR"],
                     "locale": ["en"], "frequency": ["one_off"], "amount": ["50.00"]}
    assert [b["type"] for b in wait_for_beacons(page, sent, 2)] == ["impression", "click"]
    assert sent[1]["variant"] == "b"


def test_german_page_gets_german_copy_and_german_amounts(context, campaigns, publish):
    campaigns("default", translations=[{"locale": "de", "headline": "Unterstützen Sie uns",
                                        "button_label": "Jetzt spenden"}])
    page = context.new_page()
    page.goto(publish(lang="de"))

    host = ask(page)

    assert host.locator("h2").inner_text() == "Unterstützen Sie uns"
    assert host.get_by_role("button").inner_text() == "Jetzt spenden"
    assert host.locator("label").all_inner_texts()[:3] == ["10,00\xa0€", "25,00\xa0€", "50,00\xa0€"]
    assert host.locator("legend").inner_text() == "Betrag wählen"
