"""Issue 10, journeys 1-3, as a reader lives them in Chromium: the ask on a publisher's article (another origin,
inside its Shadow DOM), the donation form, the sandbox checkout, the thank-you, the receipt that reaches a real
SMTP server, and for a monthly supporter the renewals and the "Manage" link of the receipt. Each journey ends in
the database and in the mailbox."""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from tests.browser.conftest import skip_without_chromium, wipe_committed

skip_without_chromium()  # before the app and the database are set up for nothing
expect = pytest.importorskip("playwright.sync_api").expect  # waits for what a page shows after a click

SLUG = "readers"
ARTICLE = "/news/river-towns.html"
PARAGRAPHS = 5


def article(origin: str) -> str:
    """A publisher's article with the real embed tag, as a CMS would put it."""
    body = "".join(f"<p>Paragraph {n} of the story about the river towns.</p>" for n in range(1, PARAGRAPHS + 1))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>River towns</title>
<meta property="article:section" content="Local life"><meta name="author" content="A. Reporter">
</head><body><h1>How the river towns rebuilt</h1><div id="story">{body}</div>
<script src="{origin}/embed/v1/cta.js" data-selector="#story" async></script></body></html>"""


@pytest.fixture
def reader_article(publisher, live_app, campaigns, clean):
    """The ask (placed after the second paragraph) on an article of the publisher's; returns the article's URL."""
    campaigns(SLUG, after_paragraph=2, thank_you="Thank you! Readers like you keep the river towns reported.",
              presets={"one_off": {"EUR": [1000, 2500, 5000]}, "monthly": {"EUR": [500, 1000]}})
    publisher.pages[ARTICLE] = article(live_app[1])
    yield publisher.origin + ARTICLE
    publisher.pages.pop(ARTICLE, None)


@pytest.fixture
def clean(live_app):
    """The journeys commit gifts, emails and the sandbox's objects (its clock too); afterwards they go, so the
    other browser tests start clean."""
    yield
    wipe_committed(live_app[0])

# -- helpers ---------------------------------------------------------------------------------------------

def ask(page):
    """The ask's host element on the publisher's page, once cta.js has placed it."""
    host = page.locator(f"[data-donations-ask='{SLUG}']")
    host.wait_for(state="attached")
    return host


def wait_for(app, query, expected, seconds: float = 10):
    """Polls the database until ``query`` (run in a fresh transaction) returns ``expected``, or the deadline
    passes; returns what it last saw. For what the browser sends on its own time (beacons)."""
    from donations.extensions import db

    deadline = time.monotonic() + seconds
    with app.app_context():
        while True:
            seen = db.session.scalar(query)
            if seen == expected or time.monotonic() > deadline:
                return seen
            db.session.rollback()
            time.sleep(0.05)


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def give_from_the_article(app, page, article_url: str, origin: str, *, amount: str, email: str,
                          monthly: bool = False) -> None:
    """A reader on the article: the ask, an amount, the donation form, their email; leaves them on the checkout."""
    from donations.campaigns.models import AskCount

    page.goto(article_url)
    host = ask(page)
    # The ask stands in a Shadow DOM of its own: the publisher's page styles and scripts do not reach into it.
    assert page.evaluate("""slug => [document.querySelectorAll('h2').length,
        document.querySelector(`[data-donations-ask="${slug}"]`).shadowRoot.querySelectorAll('h2').length]""",
                         SLUG) == [0, 1]
    assert host.get_by_role("heading").inner_text() == f"Headline {SLUG}"
    # Seen (the impression's beacon is counted) before the reader moves on, as a reader reads before clicking.
    assert wait_for(app, select(func.sum(AskCount.impressions)), 1) == 1
    if monthly:
        host.get_by_role("link", name=re.compile("monthly", re.I)).click()
        page.wait_for_url(f"{origin}/donate?*")
        page.get_by_label(amount, exact=True).check()
    else:
        host.get_by_label(amount, exact=True).check()
        host.get_by_role("button", name="Give now").click()
        page.wait_for_url(f"{origin}/donate?*")
        # The amount chosen in the ask is the one chosen on the form.
        assert page.get_by_label(amount, exact=True).is_checked()
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_role("button", name="Donate monthly" if monthly else "Give now").click()
    page.wait_for_url(f"{origin}/sandbox/checkout/*")


def pay(page, card: str, button: str) -> None:
    page.get_by_label("Card number").fill(card)
    page.get_by_role("button", name=button).click()


def the_ask_is_counted(app) -> None:
    """One impression and one click, for the staff's figures. They go out as beacons, the click while the page
    navigates away: wait for them in the database (so that they are counted, and not written after the
    clean-up)."""
    from donations.campaigns.models import AskCount

    assert wait_for(app, select(func.sum(AskCount.clicks)), 1) == 1
    assert wait_for(app, select(func.sum(AskCount.impressions)), 1) == 1  # still one: the thank-you is no ask


# -- journey 1: a one-off gift from the article ---------------------------------------------------------

def test_reader_gives_from_the_article_and_is_thanked_there_with_one_receipt(context, live_app, reader_article,
                                                                            mailbox):
    from donations.campaigns.models import Campaign
    from donations.extensions import db
    from donations.ledger.models import Donation, DonationStatus, Frequency, Supporter

    app, origin = live_app
    page = context.new_page()
    give_from_the_article(app, page, reader_article, origin, amount="€50.00", email="ada@example.com")

    assert page.get_by_role("heading", level=1).inner_text() == "Pay €50.00"
    pay(page, "4242 4242 4242 4242", "Donate €50.00")
    page.wait_for_url(f"{origin}/thanks?session_id=*")
    status = page.locator("#donation-status").inner_text()
    assert "Your gift of €50.00 has arrived" in status

    page.get_by_role("link", name="Back to the article").click()
    page.wait_for_url(reader_article)  # the #donations-thanks mark is read and taken off the address
    thanks = ask(page).get_by_role("region", name="Thank you")
    assert thanks.inner_text() == "Thank you! Readers like you keep the river towns reported."
    assert ask(page).get_by_role("button").count() == 0  # no ask, no amounts: the reader has given
    # ... and it stays so on the next visit (the publisher's own localStorage, no cookie).
    page.reload()
    expect(ask(page).get_by_role("region", name="Thank you")).to_be_visible()
    the_ask_is_counted(app)

    with app.app_context():
        gift = db.session.scalars(select(Donation)).one()
        campaign = db.session.scalars(select(Campaign).where(Campaign.slug == SLUG)).one()
        assert (gift.amount, gift.currency, gift.frequency, gift.status) == (5000, "EUR", Frequency.ONE_OFF,
                                                                             DonationStatus.SUCCEEDED)
        assert gift.campaign_id == campaign.id
        assert gift.article_url == reader_article
        assert [s.email for s in db.session.scalars(select(Supporter))] == ["ada@example.com"]
        assert gift.supporter.email == "ada@example.com"
        receipt_number = gift.receipt_number
    assert receipt_number and f"Your receipt ({receipt_number}) is on its way to ada@example.com" in status

    (receipt,) = mailbox.deliver(app)
    assert receipt["To"] == "ada@example.com"
    assert receipt_number in receipt["Subject"]
    text = body(receipt)
    assert f"Receipt number: {receipt_number}" in text
    assert re.search(r"^Amount:\s+€50\.00$", text, re.M)
    assert mailbox.deliver(app) == []  # running the outbox again sends nothing more


# -- journey 2: a declined card, then another card ------------------------------------------------------

def test_declined_card_says_so_at_the_card_field_books_nothing_and_another_card_gives_once(
        context, live_app, reader_article, mailbox):
    from donations.extensions import db
    from donations.ledger.models import Donation

    app, origin = live_app
    page = context.new_page()
    give_from_the_article(app, page, reader_article, origin, amount="€25.00", email="bo@example.com")
    checkout = page.url

    pay(page, "4000 0000 0000 0002", "Donate €25.00")

    error = page.get_by_role("alert")
    expect(error).to_contain_text("Your card was declined. Please try another card.")  # the page after the POST, with its message
    expect(error).to_be_visible()
    card = page.get_by_label("Card number")
    # The message is tied to the card field (read out with it) and the reader is still on the checkout,
    # with the field there to try another card.
    described_by = card.get_attribute("aria-describedby").split()
    assert error.get_attribute("id") in described_by
    assert card.get_attribute("aria-invalid") == "true"
    assert page.url == checkout and card.is_editable()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Donation)) == 0
    assert mailbox.deliver(app) == []

    pay(page, "4242 4242 4242 4242", "Donate €25.00")
    page.wait_for_url(f"{origin}/thanks?session_id=*")
    assert "Your gift of €25.00 has arrived" in page.locator("#donation-status").inner_text()
    # The way back does not pay again: the checkout is complete.
    page.goto(checkout)
    assert page.get_by_role("button", name="Donate €25.00").count() == 0
    the_ask_is_counted(app)

    with app.app_context():
        (gift,) = db.session.scalars(select(Donation)).all()
        assert (gift.amount, gift.currency, gift.status.value) == (2500, "EUR", "succeeded")
        receipt_number = gift.receipt_number
    (receipt,) = mailbox.deliver(app)
    assert receipt["To"] == "bo@example.com" and receipt_number in body(receipt)
    assert mailbox.deliver(app) == []


# -- journey 3: a monthly supporter -----------------------------------------------------------------------

def advance(app, days: int) -> str:
    """The operator's `flask sandbox advance --days N`, the real command."""
    result = app.test_cli_runner().invoke(args=["sandbox", "advance", "--days", str(days)])
    assert result.exit_code == 0, result.output
    return result.output


def test_monthly_supporter_renews_then_changes_the_amount_and_cancels_from_the_receipt(
        context, live_app, reader_article, mailbox):
    from donations.extensions import db
    from donations.ledger.models import Donation, Frequency, RecurringDonation, RecurringStatus

    app, origin = live_app
    page = context.new_page()
    give_from_the_article(app, page, reader_article, origin, amount="€10.00", email="cy@example.com", monthly=True)
    assert page.get_by_role("heading", level=1).inner_text() == "Pay €10.00 every month"
    pay(page, "4242 4242 4242 4242", "Subscribe: €10.00 every month")
    page.wait_for_url(f"{origin}/thanks?session_id=*")
    assert "Your gift of €10.00 (every month) has arrived" in page.locator("#donation-status").inner_text()
    the_ask_is_counted(app)

    def gifts() -> list[tuple[int, str]]:
        with app.app_context():
            return [(d.amount, d.receipt_number) for d in db.session.scalars(select(Donation).order_by(Donation.id))]

    with app.app_context():
        recurring = db.session.scalars(select(RecurringDonation)).one()
        assert (recurring.amount, recurring.currency, recurring.frequency, recurring.status) == (
            1000, "EUR", Frequency.MONTHLY, RecurringStatus.ACTIVE)
        recurring_id = recurring.id
    (first,) = gifts()
    (receipt,) = mailbox.deliver(app)
    assert receipt["To"] == "cy@example.com" and first[1] in body(receipt)

    # -- a month later: the renewal, with a receipt of its own
    assert "1 invoice.paid" in advance(app, 31)
    renewed = gifts()
    assert [amount for amount, _ in renewed] == [1000, 1000] and renewed[1][1] != first[1]
    (renewal_receipt,) = mailbox.deliver(app)
    assert renewal_receipt["To"] == "cy@example.com"
    text = body(renewal_receipt)
    assert renewed[1][1] in text and re.search(r"^Amount:\s+€10\.00$", text, re.M)

    # -- "Manage your donation" from the receipt
    manage_url = re.search(r"^Manage your donation.*\n(\S+)$", text, re.M).group(1)
    assert manage_url.startswith(f"{origin}/account/")
    page.goto(manage_url)
    gift = page.locator(f"#gift-{recurring_id}")
    assert "€10.00 every month" in gift.inner_text()
    gift.get_by_text("Change amount or frequency").click()
    gift.get_by_label("Amount (EUR)").fill("15")
    gift.get_by_role("button", name="Save").click()
    expect(page.get_by_text("From the next payment on, you give €15.00 every month.")).to_be_visible()
    assert page.url == manage_url
    assert "€15.00 every month" in gift.inner_text()
    with app.app_context():
        assert db.session.get(RecurringDonation, recurring_id).amount == 1500

    # The next renewal books the new amount.
    assert "1 invoice.paid" in advance(app, 31)
    assert [amount for amount, _ in gifts()] == [1000, 1000, 1500]
    (third_receipt,) = mailbox.deliver(app)
    assert re.search(r"^Amount:\s+€15\.00$", body(third_receipt), re.M)

    # -- cancel now
    page.reload()
    gift.get_by_role("button", name="Cancel now").click()
    expect(page.get_by_text("Your gift is cancelled. We have sent you a confirmation.")).to_be_visible()
    assert page.url == manage_url
    assert gift.get_attribute("data-status") == "canceled"
    assert gift.get_by_role("button", name="Cancel now").count() == 0
    with app.app_context():
        recurring = db.session.get(RecurringDonation, recurring_id)
        assert recurring.status is RecurringStatus.CANCELED and recurring.canceled_at is not None
    (confirmation,) = mailbox.deliver(app)
    assert confirmation["To"] == "cy@example.com"
    assert "your gift of €15.00 every month" in body(confirmation) and "is cancelled" in body(confirmation)

    # Nothing more is charged: another month books nothing and sends nothing.
    advance(app, 31)
    assert len(gifts()) == 3
    assert mailbox.deliver(app) == []
