"""The ask in an article: the demo page, the script embed, the iframe and the HTML fragment."""
from __future__ import annotations

import gzip
import re
from tests.functional.helpers import frame_ancestors


def test_demo_article_embeds_the_versioned_ask_script_after_its_body(client):
    html = client.get("/").get_data(as_text=True)

    assert "How the river towns rebuilt their libraries" in html
    assert re.search(r'<script src="/embed/v1/cta.js\?v=[0-9a-f]{16}" data-selector="#article-body" async></script>',
                     html)


def test_embed_script_is_small_public_and_makes_no_third_party_request(client):
    response = client.get("/embed/v1/cta.js")
    script = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert len(gzip.compress(response.data)) < 6 * 1024  # as it travels (gzip); it runs on every article view
    assert "attachShadow" in script
    assert "max-age=300" in response.headers["Cache-Control"]
    # It only talks to the origin it was loaded from: no absolute URL is written into it.
    assert not re.search(r"https?://", script)


def test_fragment_holds_the_ask_and_posts_to_the_donation_page(client):
    html = client.get("/embed/cta/default.html?article_url=https://publisher.example/news/1").get_data(as_text=True)

    assert "Consider donating to support our work" in html
    assert "Help us to produce more articles like this. The Riverside Chronicle depends on donations" in html
    assert 'action="http://donations.test/donate"' in html
    assert '<input type="hidden" name="article_url" value="https://publisher.example/news/1">' in html
    assert "€25.00" in html and "<style>" in html


def test_fragment_formats_amounts_for_the_readers_locale(client):
    html = client.get("/embed/cta/default.html?locale=de-DE").get_data(as_text=True)

    assert "25,00\xa0€" in html


def test_fragment_drops_an_article_url_that_is_not_http(client):
    html = client.get("/embed/cta/default.html?article_url=javascript:alert(1)").get_data(as_text=True)

    assert "javascript:" not in html
    assert 'name="article_url"' not in html


def test_iframe_may_be_framed_only_by_allowed_origins_and_opens_checkout_on_top(client):
    response = client.get("/embed/cta/default")

    assert response.status_code == 200
    assert frame_ancestors(response) == "https://publisher.example"
    assert 'target="_top"' in response.get_data(as_text=True)


def test_publisher_origin_may_fetch_the_fragment_and_others_may_not(client):
    allowed = client.get("/embed/cta/default.html", headers={"Origin": "https://publisher.example"})
    other = client.get("/embed/cta/default.html", headers={"Origin": "https://evil.example"})

    assert allowed.headers.get("Access-Control-Allow-Origin") == "https://publisher.example"
    assert "Access-Control-Allow-Origin" not in other.headers


def test_unknown_campaign_embed_is_404(client):
    assert client.get("/embed/cta/nope.html").status_code == 404
    assert client.get("/embed/cta/nope").status_code == 404


def test_reader_who_gave_gets_the_thank_you_instead_of_the_ask(client):
    html = client.get("/embed/cta/default.html?thanks=1").get_data(as_text=True)

    assert "Thank you for supporting our work" in html
    assert "Consider donating" not in html and "<form" not in html


def test_embed_script_remembers_a_gift_in_the_sites_own_storage_without_cookies(client):
    script = client.get("/embed/v1/cta.js").get_data(as_text=True)

    assert "donations-thanks=" in script and "localStorage" in script
    assert "document.cookie" not in script
    assert 'credentials: "omit"' in script


def test_ask_offers_monthly_giving_with_the_article_attached(client):
    html = client.get("/embed/cta/default.html?article_url=https://publisher.example/news/1").get_data(as_text=True)

    assert ('href="http://donations.test/donate?campaign=default&amp;frequency=monthly&amp;currency=EUR'
            '&amp;article_url=https%3A%2F%2Fpublisher.example%2Fnews%2F1&amp;locale=en"') in html  # the ask's language


def test_pages_refuse_framing_except_the_embed(client):
    assert frame_ancestors(client.get("/donate")) == "'none'"
    assert frame_ancestors(client.get("/embed/cta/default")) == "https://publisher.example"
    assert client.get("/").headers["X-Content-Type-Options"] == "nosniff"


def test_manage_links_do_not_leak_through_the_referer(client):
    assert client.get("/account/not-a-token").headers["Referrer-Policy"] == "no-referrer"
