"""Supporter self-service from a signed link: history and receipts, change, pause, resume, cancel,
card updates, asking for a link, and a year of a monthly gift played through the sandbox."""
from __future__ import annotations

import base64
import html as html_lib
import math
import re
import time
import types
import uuid
from datetime import date, datetime, timedelta, timezone

import itsdangerous.timed
import pytest
from sqlalchemy import func, select

from donations.accounts import operations as account_operations
from donations.accounts.tokens import SALT, manage_url
from donations.db import now_utc
from donations.extensions import db
from donations.ledger.models import (
    Donation,
    DonationStatus,
    Frequency,
    RecurringDonation,
    RecurringStatus,
    StripeEvent,
    Supporter,
)
from donations.mail.models import OutboxEmail
from donations.payments import sandbox_gateway as sandbox
from donations.payments.models import SandboxObject
from tests.factories import post_event
from tests.functional.helpers import hidden_value
from tests.functional.statement_helpers import refund as refund_charge
from tests.functional.test_donate_form import form_data
from tests.conftest import reset_limits

PUBLIC = "http://donations.test"
EMAIL = "reader@example.com"
OTHER = "other@example.com"
GOOD_CARD = "4242424242424242"
DECLINES_RENEWALS = "4000000000000341"


# -- templates ---------------------------------------------------------------------------------------


def test_every_template_compiles(app):
    # A template that does not compile answers 500 only when a page renders it; catch it here first.
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)


# -- helpers -------------------------------------------------------------------------------------------


def local(url: str) -> str:
    assert url.startswith(PUBLIC), url
    return url.removeprefix(PUBLIC)


def give(client, *, frequency: str = "monthly", amount: str = "10.00", email: str = EMAIL,
         card: str = GOOD_CARD) -> None:
    """A gift made as a reader makes it: the donation form, then the sandbox checkout page."""
    response = client.post("/donate", data=form_data(client, frequency=frequency, amount=amount, email=email))
    assert response.status_code == 303, response.get_data(as_text=True)
    checkout = local(response.headers["Location"])
    page = client.get(checkout).get_data(as_text=True)
    paid = client.post(checkout, data={"csrf_token": hidden_value(page, "csrf_token"), "card_number": card})
    assert paid.status_code == 303, paid.get_data(as_text=True)


def supporter(email: str = EMAIL) -> Supporter:
    return db.session.scalars(select(Supporter).where(Supporter.email == email)).one()


def gift(email: str = EMAIL) -> RecurringDonation:
    db.session.expire_all()  # see what the requests committed
    return db.session.scalars(select(RecurringDonation).join(Supporter).where(Supporter.email == email)).one()


def donations(email: str = EMAIL) -> list[Donation]:
    db.session.expire_all()
    return list(db.session.scalars(select(Donation).join(Supporter).where(Supporter.email == email)
                                   .order_by(Donation.id)))


def account(email: str = EMAIL) -> str:
    """The path of the supporter's manage page, as in their emails."""
    person = supporter(email)
    return local(manage_url(person.id, person.email))


def emails(template: str | None = None) -> list[OutboxEmail]:
    query = select(OutboxEmail).order_by(OutboxEmail.id)
    if template:
        query = query.where(OutboxEmail.template == template)
    return list(db.session.scalars(query))


def messages(html: str) -> list[tuple[str, str]]:
    """The flashed messages on a page, as (category, text): category "alert" for errors, "notice" else."""
    return [(category, html_lib.unescape(text)) for category, text in
            re.findall(r'<p class="(alert|notice)" role="(?:alert|status)"[^>]*>(.*?)</p>', html, re.S)]


def act(client, path: str, gift_id: int, action: str, **fields):
    """Post a gift's form from the manage page, with the session's CSRF token (and the change form's token)."""
    page = client.get(path).get_data(as_text=True)
    if 'name="csrf_token"' not in page:  # a cancelled gift has no forms; the session's token is on /account too
        page = client.get("/account").get_data(as_text=True)
    data = {"csrf_token": hidden_value(page, "csrf_token")}
    if action == "change":
        data["token"] = hidden_value(page, "token") if 'name="token"' in page else str(uuid.uuid4())
    data.update(fields)
    return client.post(f"{path}/gifts/{gift_id}/{action}", data=data)


def act_and_read(client, path: str, gift_id: int, action: str, **fields) -> list[tuple[str, str]]:
    """Post a gift's form, follow the redirect back to the manage page and return its flashed messages."""
    response = act(client, path, gift_id, action, **fields)
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.split("?")[0] == path  # with ?invalid=<field id> when the message is about one field
    return messages(client.get(location).get_data(as_text=True))


def advance(app, days: int) -> str:
    result = app.test_cli_runner().invoke(args=["sandbox", "advance", "--days", str(days)])
    assert result.exit_code == 0, result.output
    return result.output


def terms(recurring: RecurringDonation) -> tuple:
    return (recurring.amount, recurring.currency, recurring.frequency, recurring.status,
            recurring.cancel_at_period_end, recurring.paused_until)


@pytest.fixture
def monthly(app_ctx, client) -> RecurringDonation:
    """A €10.00 monthly gift, started and paid in the sandbox."""
    give(client)
    recurring = gift()
    assert (recurring.amount, recurring.frequency, recurring.status) == (1000, Frequency.MONTHLY,
                                                                         RecurringStatus.ACTIVE)
    return recurring


def later_clock(monkeypatch, days: float) -> None:
    """Make itsdangerous (and only it) believe ``days`` have passed."""
    real = time.time
    monkeypatch.setattr(itsdangerous.timed, "time", types.SimpleNamespace(time=lambda: real() + days * 86400))


# -- the manage page and receipts ----------------------------------------------------------------------


def test_manage_page_lists_every_gift_with_its_receipt_link_and_the_active_recurring_gift(monthly, client):
    give(client, frequency="one_off", amount="25.00")
    give(client, frequency="one_off", amount="50.00", email=OTHER)
    path = account()

    response = client.get(path)

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    mine = donations()
    assert sorted(d.amount for d in mine) == [1000, 2500]
    for donation in mine:
        assert donation.receipt_number
        assert f'href="{path}/receipts/{donation.id}">{donation.receipt_number}</a>' in page
    other = donations(OTHER)[0]
    assert other.receipt_number not in page and f"/receipts/{other.id}" not in page
    assert f'id="gift-{monthly.id}" data-status="active"' in page
    assert "€10.00 every month" in page
    assert "Status: <strong>Active</strong>" in page
    for action in ("change", "pause", "card", "cancel"):
        assert f'action="{path}/gifts/{monthly.id}/{action}"' in page
    assert 'name="when" value="period_end"' in page and 'name="when" value="now"' in page
    assert EMAIL in page and OTHER not in page


def test_manage_page_of_a_supporter_without_gifts_says_so(app_ctx, client):
    db.session.add(Supporter(email="new@example.com"))
    db.session.flush()

    response = client.get(account("new@example.com"))

    assert response.status_code == 200
    assert "No gifts yet." in response.get_data(as_text=True)


def test_receipt_page_shows_amount_date_and_number(monthly, client):
    [donation] = donations()
    path = account()

    response = client.get(f"{path}/receipts/{donation.id}")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"Receipt {donation.receipt_number}" in page
    assert re.fullmatch(r"\d{4}-\d{6}", donation.receipt_number)
    assert "€10.00" in page
    assert donation.paid_at.strftime("%-d %B %Y") in page
    assert "Monthly" in page
    assert f'href="{path}"' in page


def test_receipt_of_another_supporters_donation_is_404(monthly, client):
    give(client, frequency="one_off", email=OTHER)
    [theirs] = donations(OTHER)

    assert client.get(f"{account()}/receipts/{theirs.id}").status_code == 404
    assert client.get(f"{account(OTHER)}/receipts/{theirs.id}").status_code == 200


def test_receipt_of_an_unknown_donation_is_404(monthly, client):
    assert client.get(f"{account()}/receipts/987654").status_code == 404


def test_receipt_or_gift_id_beyond_the_integer_range_is_404_not_500(monthly, client):
    path = account()
    huge = 10**20

    assert client.get(f"{path}/receipts/{huge}").status_code == 404
    page = client.get(path).get_data(as_text=True)
    response = client.post(f"{path}/gifts/{huge}/pause", data={"csrf_token": hidden_value(page, "csrf_token"),
                                                               "months": "1"})
    assert response.status_code == 404


@pytest.mark.parametrize("action,fields", [
    ("change", {"amount": "20.00", "frequency": "monthly"}),
    ("pause", {"months": "1"}),
    ("resume", {}),
    ("cancel", {"when": "now"}),
    ("card", {}),
])
def test_actions_on_another_supporters_gift_are_404_and_change_nothing(monthly, client, action, fields):
    give(client, email=OTHER)
    theirs = gift(OTHER)
    before = terms(theirs)

    response = act(client, account(), theirs.id, action, **fields)

    assert response.status_code == 404
    assert terms(gift(OTHER)) == before
    assert emails("recurring_canceled") == []


def test_unknown_action_on_own_gift_is_404(monthly, client):
    assert act(client, account(), monthly.id, "delete").status_code == 404
    assert gift().status is RecurringStatus.ACTIVE


# -- links that do not work --------------------------------------------------------------------------------


def tampered(token: str) -> list[str]:
    """Ways to spoil a valid token: a changed signature, another supporter in the payload, cuts, garbage."""
    payload, timestamp, signature = token.split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]  # the first character: all its bits count
    other = base64.urlsafe_b64encode(b'{"s":2,"e":"other@example.com"}').decode().rstrip("=")
    return [f"{payload}.{timestamp}.{flipped}", f"{other}.{timestamp}.{signature}", token[:-3], "x" + token,
            "not-a-token", "a.b.c", "%00"]


def test_tampered_link_is_400_with_a_clear_message_and_a_pointer_to_the_account_page(monthly, client):
    token = account().removeprefix("/account/")

    for bad in tampered(token):
        response = client.get(f"/account/{bad}")
        assert response.status_code == 400, bad
        page = response.get_data(as_text=True)
        assert "This link is not valid." in page
        assert "Ask for a new link on the account page." in page
        assert "Traceback" not in page


def test_invalid_link_page_links_to_the_account_page(monthly, client):
    token = account().removeprefix("/account/")

    page = client.get(f"/account/{tampered(token)[0]}").get_data(as_text=True)

    assert 'href="/account"' in page or f'href="{PUBLIC}/account"' in page


def test_tampered_link_cannot_act_on_a_gift(monthly, client):
    path = account()
    page = client.get(path).get_data(as_text=True)
    bad = f"/account/{tampered(path.removeprefix('/account/'))[0]}"

    response = client.post(f"{bad}/gifts/{monthly.id}/cancel",
                           data={"csrf_token": hidden_value(page, "csrf_token"), "when": "now"})

    assert response.status_code == 400
    assert gift().status is RecurringStatus.ACTIVE
    assert emails("recurring_canceled") == []


def test_token_signed_for_another_purpose_is_not_a_manage_link(monthly, app):
    person = supporter()
    other_salt = itsdangerous.URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="something-else")
    wrong_shape = itsdangerous.URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=SALT)
    client = app.test_client()

    for token in (other_salt.dumps({"s": person.id, "e": person.email}),
                  wrong_shape.dumps([person.id, person.email]),
                  wrong_shape.dumps({"s": str(person.id), "e": person.email}),
                  wrong_shape.dumps({"s": 987654, "e": person.email})):
        assert client.get(f"/account/{token}").status_code == 400


@pytest.mark.parametrize("days", [31, 400])
def test_link_older_than_the_limit_is_410(monthly, client, monkeypatch, days):
    path = account()
    later_clock(monkeypatch, days)

    response = client.get(path)

    assert response.status_code == 410
    page = response.get_data(as_text=True)
    assert "This link has expired." in page and "Ask for a new link on the account page." in page


def test_link_still_works_a_day_before_it_expires(monthly, client, monkeypatch):
    path = account()
    later_clock(monkeypatch, 29)

    assert client.get(path).status_code == 200


def test_link_lifetime_follows_the_configuration(monthly, app, client, monkeypatch):
    path = account()
    monkeypatch.setitem(app.config, "MANAGE_LINK_MAX_AGE_DAYS", 7)
    later_clock(monkeypatch, 8)

    assert client.get(path).status_code == 410
    assert client.get(f"{path}/receipts/{donations()[0].id}").status_code == 410


def test_expired_link_cannot_act_on_a_gift(monthly, client, monkeypatch):
    path = account()
    page = client.get(path).get_data(as_text=True)
    later_clock(monkeypatch, 30.5)  # past the link's 30 days, within the session cookie's 31 (it holds the CSRF token)

    response = client.post(f"{path}/gifts/{monthly.id}/pause",
                           data={"csrf_token": hidden_value(page, "csrf_token"), "months": "1"})

    assert response.status_code == 410
    assert gift().status is RecurringStatus.ACTIVE


def test_link_stops_working_when_the_supporters_address_changes(monthly, client):
    path = account()
    supporter().email = "new-address@example.com"
    db.session.flush()

    response = client.get(path)

    assert response.status_code == 400
    assert "This link is not valid." in response.get_data(as_text=True)
    assert client.get(account("new-address@example.com")).status_code == 200


# -- change amount or frequency --------------------------------------------------------------------------


def test_change_amount_and_frequency_updates_the_gift_and_confirms(monthly, client):
    path = account()

    flashed = act_and_read(client, path, monthly.id, "change", amount="15.50", frequency="yearly")

    assert flashed == [("notice", "From the next payment on, you give €15.50 every year.")]
    recurring = gift()
    assert (recurring.amount, recurring.currency, recurring.frequency, recurring.status) == (
        1550, "EUR", Frequency.YEARLY, RecurringStatus.ACTIVE)
    page = client.get(path).get_data(as_text=True)
    assert "€15.50 every year" in page
    # The first payment stays as it was; nothing is prorated.
    assert [d.amount for d in donations()] == [1000]


def test_changed_amount_is_charged_from_the_next_renewal(monthly, app, client):
    act_and_read(client, account(), monthly.id, "change", amount="12.00", frequency="monthly")

    advance(app, 31)

    assert [d.amount for d in donations()] == [1000, 1200]


@pytest.mark.parametrize("amount,message", [
    ("0", "Amount must be more than zero."),
    ("abc", "Enter an amount such as 25 or 25.50."),
    ("0.49", "The smallest gift is €0.50."),
    ("-5", "Amount must be more than zero."),
    ("10.001", "EUR amounts have at most 2 decimals."),
    ("10001", "The largest gift online is €10,000.00."),
    ("", "Amount: Enter an amount."),
])
def test_bad_amount_is_a_flashed_error_and_changes_nothing(monthly, client, amount, message):
    before = terms(gift())
    events = db.session.scalar(select(func.count()).select_from(StripeEvent))

    flashed = act_and_read(client, account(), monthly.id, "change", amount=amount, frequency="yearly")

    assert flashed == [("alert", message)]
    assert terms(gift()) == before
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == events  # the sandbox was not asked


@pytest.mark.parametrize("amount", ["", "lots", "0.10"])
def test_a_refused_amount_marks_its_field_for_assistive_technology(monthly, client, amount):
    page = account()  # one link: a second one signed a second later differs
    response = act(client, page, monthly.id, "change", amount=amount, frequency="yearly")
    assert response.headers["Location"] == f"{page}?invalid=amount-{monthly.id}"

    html = client.get(response.headers["Location"]).get_data(as_text=True)

    field = re.search(rf'<input type="text" id="amount-{monthly.id}"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and "autofocus" in field
    described_by = re.search(r'aria-describedby="([^"]+)"', field).group(1)
    assert re.search(rf'<p class="alert" role="alert" id="{described_by}">[^<]+</p>', html)
    # Read again (the message shown once), the page marks nothing.
    assert 'aria-invalid' not in client.get(response.headers["Location"]).get_data(as_text=True)


def test_change_to_one_off_or_an_unknown_frequency_is_refused(monthly, client):
    before = terms(gift())

    for frequency in ("one_off", "weekly", ""):
        flashed = act_and_read(client, account(), monthly.id, "change", amount="20.00", frequency=frequency)
        assert len(flashed) == 1 and flashed[0][0] == "alert", frequency
        assert flashed[0][1].startswith("How often:")

    assert terms(gift()) == before


# -- pause and resume --------------------------------------------------------------------------------------


@pytest.mark.parametrize("months", [1, 2, 3])
def test_pause_for_one_to_three_months(monthly, client, months):
    started = now_utc()

    flashed = act_and_read(client, account(), monthly.id, "pause", months=str(months))

    assert flashed == [("notice", f"Paused for {months} month{'s' if months > 1 else ''}. It resumes by itself.")]
    recurring = gift()
    assert recurring.status is RecurringStatus.PAUSED
    until = recurring.paused_until
    assert started + timedelta(days=28 * months) <= until <= started + timedelta(days=31 * (months + 1))
    page = client.get(account()).get_data(as_text=True)
    assert "Status: <strong>Paused</strong>" in page and f"until {until.strftime('%-d %B %Y')}" in page
    assert "Resume now" in page


@pytest.mark.parametrize("months", ["4", "0", "-1", "abc", ""])
def test_pause_for_another_length_is_refused(monthly, client, months):
    flashed = act_and_read(client, account(), monthly.id, "pause", months=months)

    assert len(flashed) == 1 and flashed[0][0] == "alert"
    assert flashed[0][1].startswith("Pause for:")
    recurring = gift()
    assert (recurring.status, recurring.paused_until) == (RecurringStatus.ACTIVE, None)


def test_resume_makes_a_paused_gift_active_again(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "pause", months="2")

    flashed = act_and_read(client, path, monthly.id, "resume")

    assert flashed == [("notice", "Your gift continues from the next payment.")]
    recurring = gift()
    assert (recurring.status, recurring.paused_until) == (RecurringStatus.ACTIVE, None)


def on_the_sandbox_clock(app, monkeypatch, month: int, day: int = 1) -> None:
    """Move the sandbox's clock to the next ``day`` of ``month``, and let the account operations read that
    clock too: in production the app and Stripe share real time."""
    today = datetime.fromtimestamp(sandbox.now(), timezone.utc).date()
    target = date(today.year, month, day)
    if target <= today:
        target = date(today.year + 1, month, day)
    advance(app, (target - today).days)
    monkeypatch.setattr(account_operations, "now_utc", lambda: datetime.fromtimestamp(sandbox.now(), timezone.utc))


def play_renewals(app, count: int) -> None:
    """Advance the sandbox clock just past the next ``count`` monthly renewals of a gift started now."""
    start = sandbox.now()
    end = start
    for _ in range(count):
        end = sandbox.add_interval(end, "month")
    advance(app, math.ceil((end - start) / 86400))


def test_renewal_that_falls_in_a_pause_is_not_charged_and_the_gift_resumes_by_itself(app_ctx, client,
                                                                                     monkeypatch):
    on_the_sandbox_clock(app_ctx, monkeypatch, month=7)  # 1 July: the next payment is due on 1 August
    give(client)
    advance(app_ctx, 14)
    act_and_read(client, account(), gift().id, "pause", months="1")  # on 15 July

    advance(app_ctx, 17)  # 1 August, in the pause

    assert len(donations()) == 1
    assert gift().status is RecurringStatus.PAUSED

    advance(app_ctx, 31)  # 1 September: the pause is over

    assert len(donations()) == 2
    recurring = gift()
    assert (recurring.status, recurring.paused_until) == (RecurringStatus.ACTIVE, None)


@pytest.mark.parametrize("months", [1, 2, 3])
def test_pause_right_after_a_payment_skips_that_many_monthly_payments(app_ctx, client, monkeypatch, months):
    on_the_sandbox_clock(app_ctx, monkeypatch, month=7)  # periods of 31, 31, 30 and 31 days
    give(client)
    act_and_read(client, account(), gift().id, "pause", months=str(months))

    play_renewals(app_ctx, months + 1)  # the first ``months`` renewals fall in the pause, the next is paid

    assert len(donations()) == 2
    assert gift().status is RecurringStatus.ACTIVE


# -- cancel ---------------------------------------------------------------------------------------------------


def test_cancel_at_period_end_keeps_the_gift_active_until_then_and_confirms_once(monthly, client):
    path = account()

    flashed = act_and_read(client, path, monthly.id, "cancel", when="period_end")

    recurring = gift()
    ends = recurring.current_period_end.strftime('%-d %B %Y')
    assert flashed == [("notice", f"Your gift ends on {ends}; nothing more will be charged. "
                                  "We have sent you a confirmation.")]
    assert (recurring.status, recurring.cancel_at_period_end) == (RecurringStatus.ACTIVE, True)
    [confirmation] = emails("recurring_canceled")
    assert confirmation.to_address == EMAIL
    for body in (confirmation.body_text, html_lib.unescape(confirmation.body_html)):
        assert f"Your gift ends on {ends}; nothing more will be charged." in body
        assert "after" not in body  # not "nothing more after <the day>", which reads as if that day were charged
    page = client.get(path).get_data(as_text=True)
    assert f"Status: <strong>Ends on {ends}; nothing more will be charged.</strong></p>" in page
    assert "Active" not in page and "next payment" not in page
    assert "Cancel at the end of the period" not in page and "Cancel now" in page


def test_a_gift_that_ends_offers_neither_pause_nor_a_new_amount_nor_a_card(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="period_end")

    page = client.get(path).get_data(as_text=True)

    for action in ("change", "pause", "resume", "card"):
        assert f'action="{path}/gifts/{monthly.id}/{action}"' not in page
    assert "Change amount or frequency" not in page and "Update card" not in page
    assert f'action="{path}/gifts/{monthly.id}/cancel"' in page  # cancelling now still is offered


@pytest.mark.parametrize("action,fields", [
    ("change", {"amount": "20.00", "frequency": "monthly"}),
    ("pause", {"months": "1"}),
    ("resume", {}),
])
def test_a_gift_that_ends_cannot_be_changed_paused_or_resumed(monthly, client, action, fields):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="period_end")
    before = terms(gift())

    flashed = act_and_read(client, path, monthly.id, action, **fields)

    assert flashed == [("alert", "This gift ends at the end of the period you paid for; "
                                 "nothing more will be charged.")]
    assert terms(gift()) == before


def test_a_paused_gift_cancelled_at_period_end_says_when_it_ends_not_when_it_resumes(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "pause", months="2")

    act_and_read(client, path, monthly.id, "cancel", when="period_end")

    recurring = gift()
    page = client.get(path).get_data(as_text=True)
    ends = recurring.current_period_end.strftime('%-d %B %Y')
    assert f"Status: <strong>Ends on {ends}; nothing more will be charged.</strong></p>" in page
    assert "Paused" not in page and "until" not in page and "Resume now" not in page


def test_gift_cancelled_at_period_end_ends_then_without_another_charge_or_email(monthly, app, client):
    act_and_read(client, account(), monthly.id, "cancel", when="period_end")

    advance(app, 62)

    assert gift().status is RecurringStatus.CANCELED
    assert len(donations()) == 1
    assert len(emails("recurring_canceled")) == 1


def test_cancel_now_cancels_and_confirms(monthly, client):
    path = account()

    flashed = act_and_read(client, path, monthly.id, "cancel", when="now")

    assert flashed == [("notice", "Your gift is cancelled. We have sent you a confirmation.")]
    recurring = gift()
    assert recurring.status is RecurringStatus.CANCELED and recurring.canceled_at is not None
    [confirmation] = emails("recurring_canceled")
    assert confirmation.to_address == EMAIL
    assert "is cancelled. Nothing more will be charged." in confirmation.body_text
    page = client.get(path).get_data(as_text=True)
    assert "Status: <strong>Cancelled</strong>" in page
    assert "Cancel now" not in page and "Update card" not in page and "Pause" not in page


def test_second_cancel_is_a_clear_error_without_a_second_email(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="now")

    flashed = act_and_read(client, path, monthly.id, "cancel", when="now")

    assert flashed == [("alert", "This gift has been cancelled.")]
    assert len(emails("recurring_canceled")) == 1


def test_second_cancel_at_period_end_is_a_clear_error(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="period_end")
    updates = db.session.scalar(select(func.count()).select_from(StripeEvent))

    flashed = act_and_read(client, path, monthly.id, "cancel", when="period_end")

    assert len(emails("recurring_canceled")) == 1
    assert [category for category, _ in flashed] == ["alert"]
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == updates


def test_cancel_now_after_cancel_at_period_end_ends_the_gift_at_once(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="period_end")
    page = client.get(path).get_data(as_text=True)
    assert 'name="when" value="now"' in page  # the page still offers to cancel now

    act_and_read(client, path, monthly.id, "cancel", when="now")

    assert gift().status is RecurringStatus.CANCELED
    assert len(emails("recurring_canceled")) >= 1


def test_cancel_now_after_cancel_at_period_end_is_confirmed_by_email(monthly, client):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="period_end")

    flashed = act_and_read(client, path, monthly.id, "cancel", when="now")

    assert flashed == [("notice", "Your gift is cancelled. We have sent you a confirmation.")]
    assert "Nothing more will be charged." in emails("recurring_canceled")[-1].body_text


def test_cancel_with_an_unknown_choice_is_refused(monthly, client):
    flashed = act_and_read(client, account(), monthly.id, "cancel", when="yesterday")

    assert len(flashed) == 1 and flashed[0][0] == "alert" and flashed[0][1].startswith("Cancel:")
    assert gift().status is RecurringStatus.ACTIVE
    assert emails("recurring_canceled") == []


@pytest.mark.parametrize("action,fields", [
    ("change", {"amount": "20.00", "frequency": "monthly"}),
    ("pause", {"months": "1"}),
    ("resume", {}),
    ("cancel", {"when": "period_end"}),
    ("card", {}),
])
def test_actions_on_a_cancelled_gift_are_a_clear_error(monthly, client, action, fields):
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="now")
    before = terms(gift())

    flashed = act_and_read(client, path, monthly.id, action, **fields)

    assert flashed == [("alert", "This gift has been cancelled.")]
    assert terms(gift()) == before
    assert len(emails("recurring_canceled")) == 1


# -- update card -------------------------------------------------------------------------------------------


def update_card(client, path: str, gift_id: int, card: str = GOOD_CARD):
    response = act(client, path, gift_id, "card")
    assert response.status_code == 303
    portal = local(response.headers["Location"])
    assert portal.startswith("/sandbox/portal/bps_sandbox_")
    page = client.get(portal)
    assert page.status_code == 200 and "Update your card" in page.get_data(as_text=True)
    return client.post(portal, data={"csrf_token": hidden_value(page.get_data(as_text=True), "csrf_token"),
                                     "card_number": card})


def test_update_card_goes_to_the_portal_and_back_to_the_account_page(monthly, client):
    path = account()

    response = update_card(client, path, monthly.id, "4242 4242 4242 4242")

    assert response.status_code == 303
    assert response.headers["Location"] == PUBLIC + path + "/card-updated"
    back = client.get(local(response.headers["Location"]))
    assert back.status_code == 303 and back.headers["Location"] == path
    assert messages(client.get(path).get_data(as_text=True)) == [
        ("notice", "Your card is updated; your next payments use it.")]
    assert gift().status is RecurringStatus.ACTIVE


def test_the_portal_has_a_way_back_to_the_account_page_that_changes_nothing(monthly, client):
    path = account()
    portal = local(act(client, path, monthly.id, "card").headers["Location"])
    html = client.get(portal).get_data(as_text=True)

    [href] = re.findall(r'<a href="([^"]*)" id="portal-back">Back without changing the card</a>', html)

    assert href == PUBLIC + path  # the portal session's return_url, as Stripe's portal links back
    page = client.get(local(href))
    assert page.status_code == 200
    assert messages(page.get_data(as_text=True)) == []  # no word of a card update that did not happen
    assert gift().status is RecurringStatus.ACTIVE


def test_card_return_with_a_tampered_link_is_400(monthly, client):
    for token in tampered(account().rsplit("/", 1)[1]):
        assert client.get(f"/account/{token}/card-updated").status_code == 400


def test_portal_refuses_a_declining_card_and_keeps_the_supporter_there(monthly, client):
    response = update_card(client, account(), monthly.id, "4000000000000002")

    assert response.status_code == 400
    assert "Use a Stripe test card that succeeds" in response.get_data(as_text=True)


def test_new_card_pays_the_declined_renewal_and_the_gift_is_active_again(app_ctx, client):
    give(client, card=DECLINES_RENEWALS)
    advance(app_ctx, 31)
    recurring = gift()
    assert recurring.status is RecurringStatus.PAST_DUE
    assert "Payment failed — please update your card" in client.get(account()).get_data(as_text=True)

    response = update_card(client, account(), recurring.id, GOOD_CARD)

    assert gift().status is RecurringStatus.ACTIVE
    assert [d.status for d in donations()] == [DonationStatus.SUCCEEDED] * 2
    assert len(emails("receipt")) == 2
    client.get(local(response.headers["Location"]))
    page = client.get(account()).get_data(as_text=True)
    assert messages(page) == [("notice", "Your card is updated; your next payments use it.")]
    assert "Status: <strong>Active</strong>" in page


def test_a_failed_payment_says_it_is_still_due_and_will_be_tried_again(app_ctx, client):
    give(client, card=DECLINES_RENEWALS)
    advance(app_ctx, 31)
    recurring = gift()
    assert recurring.status is RecurringStatus.PAST_DUE

    page = client.get(account()).get_data(as_text=True)

    assert ("Status: <strong>Payment failed — please update your card</strong> · "
            "the failed payment is still due; we will try it again</p>") in page
    assert "next payment" not in page  # the next period's date would hide the payment still owed
    assert "Update card" in page


def test_back_from_the_card_page_while_the_payment_still_fails_says_so(app_ctx, client):
    give(client, card=DECLINES_RENEWALS)
    advance(app_ctx, 31)
    recurring = gift()

    response = update_card(client, account(), recurring.id, DECLINES_RENEWALS)
    client.get(local(response.headers["Location"]))

    assert gift().status is RecurringStatus.PAST_DUE
    assert messages(client.get(account()).get_data(as_text=True)) == [
        ("notice", "Your card is saved, but the failed payment has not gone through yet. We will try it again; "
                   "if it fails again, please check your card details.")]


# -- a partly refunded gift ------------------------------------------------------------------------------------


def test_a_partly_refunded_gift_says_how_much_came_back(app_ctx, client):
    give(client, frequency="one_off", amount="25.64")
    [donation] = donations()
    refund_charge(client, donation.id, 1250)
    assert donations()[0].status is DonationStatus.PARTIALLY_REFUNDED

    page = html_lib.unescape(client.get(account()).get_data(as_text=True))

    assert "<td>€25.64</td>" in page and "<td>partially refunded (€12.50 refunded)</td>" in page


def test_a_partly_refunded_gift_in_german_formats_the_amount_as_germans_do(app_ctx, client):
    give(client, frequency="one_off", amount="25.64")
    [donation] = donations()
    donation.supporter.locale = "de"
    db.session.commit()
    refund_charge(client, donation.id, 1250)

    page = html_lib.unescape(client.get(account()).get_data(as_text=True))

    assert "(12,50\u00a0€ erstattet)" in page


# -- CSRF ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action,fields", [
    ("change", {"amount": "20.00", "frequency": "yearly", "token": "t"}),
    ("pause", {"months": "1"}),
    ("resume", {}),
    ("cancel", {"when": "now"}),
    ("card", {}),
])
@pytest.mark.parametrize("csrf", [None, "forged"])
def test_post_without_a_valid_csrf_token_is_400_and_changes_nothing(monthly, client, action, fields, csrf):
    path = account()
    client.get(path)  # the browser has a session
    before = terms(gift())
    portals = db.session.scalar(select(func.count()).select_from(SandboxObject)
                                .where(SandboxObject.id.like("bps\\_%", escape="\\")))
    data = dict(fields) if csrf is None else {**fields, "csrf_token": csrf}

    response = client.post(f"{path}/gifts/{monthly.id}/{action}", data=data)

    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert terms(gift()) == before
    assert emails("recurring_canceled") == []
    assert db.session.scalar(select(func.count()).select_from(SandboxObject)
                             .where(SandboxObject.id.like("bps\\_%", escape="\\"))) == portals


# -- asking for a link --------------------------------------------------------------------------------------


def request_link(client, email: str):
    page = client.get("/account").get_data(as_text=True)
    return client.post("/account", data={"csrf_token": hidden_value(page, "csrf_token"), "email": email})


def test_account_page_asks_for_an_email_address(client):
    response = client.get("/account")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="email"' in page and "Email me a link" in page


def test_known_and_unknown_addresses_get_the_same_page_and_only_the_known_one_an_email(monthly, client):
    known = request_link(client, "Reader@Example.com ")
    unknown = request_link(client, "nobody@example.com")

    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    assert "Check your email" in known.get_data(as_text=True)
    [sent] = emails("manage_link")
    assert sent.to_address == EMAIL
    assert not [e for e in emails() if e.to_address == "nobody@example.com"]
    link = re.search(rf"{re.escape(PUBLIC)}/account/\S+", sent.body_text).group(0)
    page = client.get(local(link))
    assert page.status_code == 200 and f'id="gift-{monthly.id}"' in page.get_data(as_text=True)


def test_each_request_sends_a_fresh_link(monthly, client):
    request_link(client, EMAIL)
    request_link(client, EMAIL)

    assert len(emails("manage_link")) == 2


@pytest.mark.parametrize("email,message", [
    ("not-an-email", "Enter a valid email address, such as name@example.com."),
    ("", "Enter your email address."),
    ("a@b@example.com", "Enter a valid email address, such as name@example.com."),
])
def test_malformed_address_is_400_with_the_field_error(app_ctx, client, email, message):
    response = request_link(client, email)

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert 'name="email"' in page
    assert emails() == []


def test_more_than_three_requests_for_one_address_in_an_hour_are_429(monthly, client):
    for spelling in (EMAIL, "READER@example.com", f" {EMAIL}"):
        assert request_link(client, spelling).status_code == 200

    response = request_link(client, EMAIL)

    assert response.status_code == 429
    assert "Traceback" not in response.get_data(as_text=True)
    assert len(emails("manage_link")) == 3
    assert request_link(client, "somebody-else@example.com").status_code == 200  # the limit is per address


def test_more_than_ten_requests_from_one_address_in_an_hour_are_429(app_ctx, client):
    for n in range(10):
        assert request_link(client, f"reader{n}@example.com").status_code == 200

    assert request_link(client, "reader10@example.com").status_code == 429


def test_rate_limit_starts_afresh_after_a_reset(app_ctx, client):
    for _ in range(3):
        request_link(client, EMAIL)
    assert request_link(client, EMAIL).status_code == 429

    reset_limits()

    assert request_link(client, EMAIL).status_code == 200


# -- done when: a year of a monthly gift, a declined renewal, a cancellation from the email -------------------


def test_monthly_gift_renews_for_eleven_more_months_with_a_donation_and_a_receipt_each(app_ctx, client):
    give(client, amount="10.00")

    # Eleven months take at most 337 days and twelve well over 341, so 341 days hold exactly 11 renewals.
    output = advance(app_ctx, 341)

    assert "11 invoice.paid" in output
    recurring = gift()
    paid = donations()
    assert len(paid) == 12
    assert all(d.status is DonationStatus.SUCCEEDED and d.amount == 1000 for d in paid)
    assert all(d.recurring_donation_id == recurring.id for d in paid)
    assert len({d.stripe_invoice_id for d in paid}) == 12
    assert len({d.receipt_number for d in paid}) == 12 and None not in {d.receipt_number for d in paid}
    paid_at = sorted(d.paid_at for d in paid)
    assert all(27 <= (b - a).days <= 31 for a, b in zip(paid_at, paid_at[1:]))
    receipts = emails("receipt")
    assert len(receipts) == 12 and {e.to_address for e in receipts} == {EMAIL}
    assert recurring.status is RecurringStatus.ACTIVE
    assert emails("payment_failed") == []
    # The account page lists all twelve with their receipts.
    page = client.get(account()).get_data(as_text=True)
    assert all(f"/receipts/{d.id}" in page for d in paid)


def test_monthly_gift_in_steps_of_thirty_or_thirty_one_days_renews_each_month(app_ctx, client):
    give(client, amount="5.00")

    for days in (31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31):  # 337 days: 11 renewals, whatever the month
        advance(app_ctx, days)

    assert len(donations()) == 12
    assert len(emails("receipt")) == 12


def test_declined_renewal_then_cancel_from_the_link_in_the_receipt_email(app_ctx, client):
    give(client, card=DECLINES_RENEWALS)
    assert len(donations()) == 1

    advance(app_ctx, 38)  # the renewal (about 30 days on) and its retries 3, 5 and 7 days later

    recurring = gift()
    assert recurring.status is RecurringStatus.PAST_DUE
    assert len(donations()) == 1
    # The renewal and Stripe's three retries (3, 5 and 7 days later) are declined: one email per attempt.
    failed = emails("payment_failed")
    assert len(failed) == 4
    assert all(e.to_address == EMAIL and "we could not collect your gift of €10.00 every month" in e.body_text
               for e in failed)

    # Stripe may send an event again, and a new event about the same attempt: still one email each.
    stored = db.session.scalars(select(StripeEvent).where(StripeEvent.type == "invoice.payment_failed")).first()
    assert post_event(client, stored.payload).get_json()["outcome"] == "duplicate"
    again = {**stored.payload, "id": f"evt_test_{uuid.uuid4().hex}"}
    assert post_event(client, again).status_code == 200
    assert len(emails("payment_failed")) == 4

    advance(app_ctx, 31)  # the next renewal is declined too: its own invoice, its own emails

    invoices = {e.payload["data"]["object"]["id"] for e in
                db.session.scalars(select(StripeEvent).where(StripeEvent.type == "invoice.payment_failed"))}
    assert len(invoices) == 2
    assert sorted(e.dedupe_key for e in emails("payment_failed")) == sorted(
        f"payment_failed:{invoice}:{attempt}" for invoice in invoices for attempt in (1, 2, 3, 4))

    # The supporter follows the link in their receipt and cancels.
    [receipt] = emails("receipt")
    link = re.search(rf"{re.escape(PUBLIC)}/account/\S+", receipt.body_text).group(0)
    path = local(link)
    page = client.get(path)
    assert page.status_code == 200
    assert "Payment failed — please update your card" in page.get_data(as_text=True)

    flashed = act_and_read(client, path, recurring.id, "cancel", when="now")

    assert flashed == [("notice", "Your gift is cancelled. We have sent you a confirmation.")]
    assert gift().status is RecurringStatus.CANCELED
    [confirmation] = emails("recurring_canceled")
    assert confirmation.to_address == EMAIL
    # Nothing more is tried after the cancellation.
    advance(app_ctx, 62)
    assert len(emails("payment_failed")) == 8 and len(donations()) == 1


def test_a_gift_that_ends_has_no_card_to_update(monthly, client):
    """It takes no more payments: the card page is refused like a change (the button is not shown either)."""
    path = account()
    act_and_read(client, path, monthly.id, "cancel", when="period_end")

    response = act(client, path, monthly.id, "card")

    assert response.status_code == 303 and "/sandbox/portal/" not in response.headers["Location"]
    assert messages(client.get(response.headers["Location"]).get_data(as_text=True)) == [
        ("alert", "This gift ends at the end of the period you paid for; nothing more will be charged.")]


def test_the_cancellation_email_without_a_known_period_end_says_so_in_words(monthly, client):
    from donations.mail import emails as mail

    ending = gift()
    ending.cancel_at_period_end, ending.current_period_end = True, None  # Stripe named no period end
    mail.queue_recurring_canceled(ending)
    db.session.commit()

    [sent] = emails("recurring_canceled")
    assert "Ends at the end of the period you paid for; nothing more will be charged." in sent.body_text
    assert "ends on ;" not in sent.body_text and "ends on ;" not in sent.body_html
