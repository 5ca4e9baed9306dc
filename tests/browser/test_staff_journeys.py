"""Issue 10, journeys 4 and 5 in Chromium: a staff member signs in, finds a supporter, refunds half a gift and
edits the ask, which a reader then sees on the publisher's article; an accountant downloads the quarter's
ledger as CSV and as XLSX, whose rows match the books, and cannot refund.

The gift is paid through the sandbox checkout by a reader of its own (``sandbox_gift``: the app's form and
checkout, the webhook and the ledger, as for any gift), so it has a payment the sandbox can refund.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.browser.conftest import skip_without_chromium, wipe_committed
from tests.staff_helpers import PASSWORD, make_user, sandbox_gift

skip_without_chromium()  # before the app and the database are set up for nothing

SUPPORTER = "grace.supporter@example.com"
ARTICLE_PATH = "/news/river.html"


@pytest.fixture
def clean(live_app, campaigns, publisher):
    """Every row the journeys commit goes afterwards (before ``campaigns`` removes the campaign the gifts
    point to), so the other browser tests start clean."""
    yield
    publisher.pages.pop(ARTICLE_PATH, None)
    wipe_committed(live_app[0])

def sign_in(page, origin: str, email: str) -> None:
    """The sign-in form, as a person fills it in."""
    page.goto(f"{origin}/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{origin}/staff/")


def article(origin: str) -> str:
    """A publisher's article with the embed tag, as a CMS would put it."""
    body = "".join(f"<p>Paragraph {n} of the story.</p>" for n in range(1, 5))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>River story</title></head>
<body><h1>River story</h1><div id="story">{body}</div>
<script src="{origin}/embed/v1/cta.js" data-selector="#story" async></script></body></html>"""


def headline_on(context, url: str) -> str:
    page = context.new_page()
    page.goto(url)
    host = page.locator("[data-donations-ask]")
    host.wait_for(state="attached")
    text = host.locator("h2").inner_text()
    page.close()
    return text


def audit_actions(app) -> list[tuple[str, str, str | None, str]]:
    from donations.extensions import db
    from donations.staff.models import AuditEntry

    with app.app_context():
        return [(a.action, a.object_type, a.object_id, a.outcome)
                for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# -- journey 4 ---------------------------------------------------------------------------------------------

def test_staff_find_a_supporter_refund_half_a_gift_and_edit_the_ask_the_article_shows(
        new_context, live_app, publisher, campaigns, mailbox, clean):
    from donations.campaigns.models import Campaign
    from donations.extensions import db
    from donations.ledger.models import Donation, DonationStatus, Refund

    app, origin = live_app
    campaigns("default", headline="Consider donating to support our work")
    gift_id = sandbox_gift(app, amount="25.00", email=SUPPORTER)
    sandbox_gift(app, amount="10.00", email="another.reader@example.com")  # someone the search must not find
    assert sorted(m["To"] for m in mailbox.deliver(app)) == ["another.reader@example.com", SUPPORTER]  # receipts
    _, email = make_user(app, "staff")

    publisher.pages[ARTICLE_PATH] = article(origin)
    story = publisher.origin + ARTICLE_PATH
    reader = new_context()
    assert headline_on(reader, story) == "Consider donating to support our work"

    # -- sign in, find the supporter, open the gift ------------------------------------------------------------
    staff = new_context().new_page()
    sign_in(staff, origin, email)
    staff.get_by_role("link", name="Supporters").click()
    staff.get_by_role("searchbox", name="Search").fill("grace.supporter")
    staff.get_by_role("button", name="Filter").click()
    staff.wait_for_url(re.compile(r".*/staff/supporters\?.*q=grace\.supporter"))
    (found,) = staff.locator("table tbody tr").all_inner_texts()  # one supporter matches, the other does not
    assert SUPPORTER in found
    staff.get_by_role("link", name=SUPPORTER).click()
    staff.wait_for_url(re.compile(r".*/staff/supporters/\d+$"))
    gifts = staff.get_by_role("row").filter(has_text="€25.00")
    assert gifts.count() == 1
    gifts.get_by_role("link").click()
    staff.wait_for_url(f"{origin}/staff/donations/{gift_id}")

    # -- refund half ------------------------------------------------------------------------------------------
    amount = staff.get_by_label(re.compile(r"^Amount to refund"))
    assert amount.input_value() == "25.00"  # everything that is left, until staff say otherwise
    amount.fill("12.50")
    staff.get_by_role("button", name="Refund", exact=True).click()
    # A second look before the money goes: nothing is refunded until staff confirm.
    staff.get_by_role("heading", name="Confirm the refund").wait_for()
    assert staff.locator("#refund-question").inner_text() == (
        f"Refund €12.50 of €25.00 to {SUPPORTER}? The money goes back to their card; this cannot be undone.")
    assert staff.get_by_role("link", name="Back to the donation without refunding").get_attribute("href") \
        == f"/staff/donations/{gift_id}"
    with app.app_context():
        assert db.session.scalars(select(Refund).where(Refund.donation_id == gift_id)).all() == []
    staff.get_by_role("button", name="Refund €12.50", exact=True).click()
    staff.get_by_text("Refund requested.").wait_for()
    facts = staff.locator("#donation-facts")
    assert facts.get_by_role("row", name=re.compile("^Refunded")).get_by_role("cell").inner_text() == "€12.50"
    assert facts.get_by_role("row", name=re.compile("^Status")).get_by_role("cell").inner_text() \
        == "partially refunded"
    # What is left, and no more, may still be refunded.
    assert staff.get_by_label(re.compile(r"^Amount to refund")).input_value() == "12.50"

    with app.app_context():
        refunds = db.session.scalars(select(Refund).where(Refund.donation_id == gift_id)).all()
        assert [(r.amount, r.currency) for r in refunds] == [(1250, "EUR")]
        gift = db.session.get(Donation, gift_id)
        assert (gift.amount, gift.amount_refunded, gift.status) == (2500, 1250, DonationStatus.PARTIALLY_REFUNDED)
    # The supporter is told, once: what went back and what stays given.
    (told,) = mailbox.deliver(app)
    assert (told["To"], told["Subject"]) == (SUPPORTER, "Your refund from The Riverside Chronicle")
    told_text = told.get_body(("plain",)).get_content()
    assert "we have refunded €12.50 of your gift of €25.00" in told_text and "Your gift now: €12.50" in told_text
    assert mailbox.deliver(app) == []

    # -- edit the ask -----------------------------------------------------------------------------------------
    staff.get_by_role("link", name="Campaigns").click()
    staff.get_by_role("link", name="default").click()
    staff.wait_for_url(re.compile(r".*/staff/campaigns/\d+$"))
    copy = staff.locator("form").filter(has=staff.get_by_role("button", name="Save and publish"))
    copy.get_by_label("Headline").fill("Keep the river towns' newsroom open")
    copy.get_by_role("button", name="Save and publish").click()
    staff.get_by_text("Saved. The ask shows the new copy everywhere now.").wait_for()
    with app.app_context():
        assert db.session.scalar(select(Campaign.headline).where(Campaign.slug == "default")) \
            == "Keep the river towns' newsroom open"
    assert copy.get_by_label("Headline").input_value() == "Keep the river towns' newsroom open"

    # The reader reloads the article: the new copy, at once.
    assert headline_on(reader, story) == "Keep the river towns' newsroom open"

    actions = audit_actions(app)
    assert ("donation.refund", "donation", str(gift_id), "ok") in actions
    with app.app_context():
        campaign_id = db.session.scalar(select(Campaign.id).where(Campaign.slug == "default"))
    assert ("campaign.edit", "campaign", str(campaign_id), "ok") in actions


# -- journey 5 ---------------------------------------------------------------------------------------------

def quarter_start(day: date) -> date:
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def books_with_a_refund(app) -> tuple[int, int]:
    """A gift of €40.00 with €10.00 refunded, booked and settled as the scheduler would; returns
    (donation id, refund id)."""
    from donations.extensions import db
    from donations.ledger.jobs import settle_books
    from donations.ledger.models import Donation, Refund
    from donations.staff import operations as ops

    gift_id = sandbox_gift(app, amount="40.00", email=SUPPORTER)
    with app.test_request_context():
        gift = db.session.get(Donation, gift_id)
        ops.refund(gift, ops.parse_refund_amount("10.00", gift), "journey-5")
        db.session.commit()
        settle_books()
        db.session.commit()
        refund_id = db.session.scalars(select(Refund.id).where(Refund.donation_id == gift_id)).one()
    return gift_id, refund_id


def balance_side(kind, debit, credit, currency, donation_id) -> tuple:
    """A ledger row's Stripe balance side as (kind, signed minor units, currency, donation id); amounts are
    decimal strings in the CSV and numbers in the XLSX."""
    def minor(value) -> int:
        return int(Decimal(str(value)) * 100) if value not in (None, "") else 0

    return kind, minor(debit) - minor(credit), currency, int(donation_id)


def ledger_in_db(app, start: date, end: date) -> list[tuple]:
    """What the books hold for the period: (kind, amount in minor units, currency, donation id) per line."""
    from donations.extensions import db
    from donations.ledger.models import LedgerLine

    with app.app_context():
        return sorted((line.kind.value, line.amount, line.currency, line.donation_id)
                      for line in db.session.scalars(select(LedgerLine).where(
                          LedgerLine.booked_on >= start, LedgerLine.booked_on <= end)))


def test_accountant_downloads_the_quarters_ledger_as_csv_and_xlsx_and_cannot_refund(
        new_context, live_app, campaigns, mailbox, clean):
    import openpyxl

    from donations.extensions import db
    from donations.ledger.models import Donation, Refund
    from donations.payments.models import SandboxObject

    app, origin = live_app
    campaigns("default")
    first_day = datetime.now(timezone.utc).date()  # the books' days are UTC days
    gift_id, _ = books_with_a_refund(app)
    # The gift's receipt and the refund's confirmation, once each.
    assert sorted((m["To"], m["Subject"].split()[1]) for m in mailbox.deliver(app)) == [
        (SUPPORTER, "receipt"), (SUPPORTER, "refund")]
    today = datetime.now(timezone.utc).date()
    # From the quarter the books were started in to the day after: it holds them even if midnight (and a
    # quarter's end) passed while they were written.
    start = quarter_start(first_day)
    books = ledger_in_db(app, start, today)
    with app.app_context():
        fee = db.session.get(Donation, gift_id).fee
    assert fee and books == [("fee", -fee, "EUR", gift_id), ("gift", 4000, "EUR", gift_id),
                             ("refund", -1000, "EUR", gift_id)]
    _, email = make_user(app, "accountant")

    context = new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(page, origin, email)
    page.get_by_role("link", name="Reports").click()
    page.wait_for_url(f"{origin}/staff/reports")

    def ask_for(fmt: str):
        page.get_by_label("Export").select_option(label="Ledger")
        page.get_by_label("From").fill(start.isoformat())
        page.get_by_label("To").fill(today.isoformat())
        page.get_by_label("Format").select_option(fmt)
        page.get_by_role("button", name="Export").click()

    # -- CSV: small enough to download at once ----------------------------------------------------------------
    with page.expect_download() as csv_download:
        ask_for("csv")
    assert csv_download.value.suggested_filename == f"ledger-{start}-{today}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text(encoding="utf-8"))))
    # Two rows per line of the books, a debit and a credit; the Stripe balance's side carries the line's amount.
    assert len(rows) == 2 * len(books)
    assert {(r["date"], r["donation_id"]) for r in rows} == {(today.isoformat(), str(gift_id))}
    assert sorted(balance_side(r["kind"], r["debit"], r["credit"], r["currency"], r["donation_id"])
                  for r in rows if r["account"].endswith("Stripe balance")) == books

    # -- XLSX: prepared in the background, as a large export is, then downloaded from its page -------------
    limit = app.config["EXPORT_DIRECT_MAX_ROWS"]
    app.config["EXPORT_DIRECT_MAX_ROWS"] = 0
    try:
        ask_for("xlsx")
        page.wait_for_url(re.compile(r".*/staff/reports/jobs/\d+$"))
    finally:
        app.config["EXPORT_DIRECT_MAX_ROWS"] = limit
    from donations.reports.jobs import run_exports

    with app.app_context():
        assert run_exports()["done"] == 1  # the scheduler's job, once
    download_link = page.get_by_role("link", name=re.compile(r"^Download ledger-"))
    download_link.wait_for()  # the page polls the job's status and shows the link when it is done
    with page.expect_download() as xlsx_download:
        download_link.click()
    book = openpyxl.load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes()))
    assert book.sheetnames == ["EUR"]  # one sheet per currency
    header, *lines = book["EUR"].iter_rows(values_only=True)
    assert list(header) == list(rows[0])
    assert len(lines) == len(rows)
    cells = [dict(zip(header, line)) for line in lines]
    assert {(c["date"].date(), c["donation_id"]) for c in cells} == {(today, gift_id)}  # a date, a number
    assert sorted(balance_side(c["kind"], c["debit"], c["credit"], c["currency"], c["donation_id"])
                  for c in cells if c["account"].endswith("Stripe balance")) == books

    # -- no refund for an accountant --------------------------------------------------------------------------
    page.goto(f"{origin}/staff/donations/{gift_id}")
    assert page.get_by_role("heading", name=re.compile("€40.00 from")).is_visible()
    assert page.get_by_role("button", name="Refund").count() == 0
    assert page.get_by_label(re.compile("Amount to refund")).count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    with app.app_context():
        sandbox_rows = db.session.scalar(select(func.count()).select_from(SandboxObject))
    answer = page.request.post(f"{origin}/staff/donations/{gift_id}/refund",
                               form={"csrf_token": token, "token": "accountant-try", "amount": "30.00"})
    assert answer.status == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SandboxObject)) == sandbox_rows
        assert db.session.get(Donation, gift_id).amount_refunded == 1000
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    # Refused and written to the audit log; the one refund stays the staff's.
    actions = audit_actions(app)
    assert ("denied", "staff.refund", str(gift_id), "denied") in actions
    assert [a for a in actions if a[0] == "donation.refund"] == [("donation.refund", "donation", str(gift_id), "ok")]
    # Exports and a refused refund write to nobody: the outbox has nothing new.
    assert mailbox.deliver(app) == []
