"""The donation form's script (donations/static/donate.js) in Chromium: the amount typed under "Other amount" is
the amount charged even when the reader never ticks "Other", choosing a preset empties the box, and switching the
frequency or the currency keeps the email and name the reader typed."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.browser.conftest import skip_without_chromium, wipe_committed

skip_without_chromium()
expect = pytest.importorskip("playwright.sync_api").expect

PRESETS = {"one_off": {"EUR": [1000, 2500, 5000], "GBP": [1000, 2500, 5000]},
           "monthly": {"EUR": [500, 1000], "GBP": [500, 1000]}}


@pytest.fixture
def donate_page(live_app, campaigns, context):
    """A fresh /donate of the default campaign (€25 preselected); afterwards the attempts it opened go."""
    app, origin = live_app
    campaigns("default", presets=PRESETS)
    page = context.new_page()
    page.goto(f"{origin}/donate")
    yield page
    wipe_committed(app)


def other_box(page):
    return page.get_by_label("Other amount", exact=True)


def test_typing_an_other_amount_without_ticking_other_charges_the_typed_amount(donate_page, live_app):
    from donations.checkout.models import CheckoutAttempt
    from donations.extensions import db

    app, origin = live_app
    page = donate_page
    expect(page.get_by_label(re.compile(r"€25\.00"))).to_be_checked()

    other_box(page).press_sequentially("7")
    page.get_by_label("Email", exact=True).fill("seven@example.com")
    page.get_by_role("button", name="Give now").click()

    page.wait_for_url(f"{origin}/sandbox/checkout/*")
    expect(page.get_by_text(re.compile(r"€7\.00")).first).to_be_visible()
    with app.app_context():
        assert db.session.scalars(select(CheckoutAttempt.amount)).all() == [700]


def test_clicking_into_the_other_amount_ticks_other_and_a_preset_empties_it(donate_page):
    page = donate_page
    other = page.get_by_label("Other", exact=True)

    other_box(page).click()
    expect(other).to_be_checked()
    other_box(page).fill("12")
    page.get_by_label(re.compile(r"€50\.00")).check()

    expect(other_box(page)).to_have_value("")
    expect(other).not_to_be_checked()


def test_tabbing_through_the_other_amount_keeps_the_preset(donate_page):
    page = donate_page
    page.get_by_label(re.compile(r"€50\.00")).check()  # a click: the radio has the focus

    page.keyboard.press("Tab")
    expect(other_box(page)).to_be_focused()
    page.keyboard.press("Tab")

    expect(page.get_by_label(re.compile(r"€50\.00"))).to_be_checked()
    expect(page.get_by_label("Other", exact=True)).not_to_be_checked()


def test_switching_frequency_or_currency_keeps_the_email_and_name_typed(donate_page, live_app):
    _, origin = live_app
    page = donate_page
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_label("Name (optional)").fill("Ada Reader")

    with page.expect_navigation():
        page.locator("#frequency-choice").get_by_role("link", name="Monthly").click()
    expect(page.get_by_role("button", name="Donate monthly")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("ada@example.com")
    expect(page.get_by_label("Name (optional)")).to_have_value("Ada Reader")

    with page.expect_navigation():
        page.locator("#currency-choice").get_by_role("link", name="GBP").click()
    expect(page.get_by_label(re.compile(r"£5\.00"))).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value("ada@example.com")
    expect(page.get_by_label("Name (optional)")).to_have_value("Ada Reader")

    # Kept for the one reload only: a later visit of the form starts empty.
    page.goto(f"{origin}/donate")
    expect(page.get_by_label("Email", exact=True)).to_have_value("")
