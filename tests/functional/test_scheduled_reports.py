"""The scheduled email reports: due from their hour on, queued once per period and recipient however often or late
the hourly job runs, one failing report not stopping the other, and their figures per currency."""
from __future__ import annotations

import email
import logging
from datetime import date, datetime, timezone
from email import policy

import pytest
from flask import current_app
from sqlalchemy import func, select

from donations.campaigns.models import Campaign
from donations.extensions import db
from donations.ledger.models import (
    Dispute,
    Donation,
    DonationStatus,
    Frequency,
    Payout,
    RecurringDonation,
    RecurringStatus,
    Refund,
    Supporter,
)
from donations.mail.models import EmailStatus, OutboxEmail
from donations.mail.sender import send_due
from donations.reports import summaries
from donations.reports.jobs import send_scheduled_reports
from donations.reports.schedule import ReportKind, get_schedule
from donations.scheduler import JOB_DEFAULTS, build_scheduler
from tests.factories import default_campaign

MONTHLY, WEEKLY = ReportKind.MONTHLY_ACCOUNTING, ReportKind.WEEKLY_SUPPORTERS


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def configure(kind: ReportKind, recipients=("ada@example.org", "bob@example.org"), *, enabled=True, **settings):
    schedule = get_schedule(kind)
    schedule.enabled, schedule.recipients = enabled, list(recipients)
    for name, value in settings.items():
        setattr(schedule, name, value)
    db.session.commit()


def outbox(kind: ReportKind | None = None) -> list[OutboxEmail]:
    stmt = select(OutboxEmail).order_by(OutboxEmail.id)
    if kind is not None:
        stmt = stmt.where(OutboxEmail.template == kind.value)
    return list(db.session.scalars(stmt))


def keys(kind: ReportKind | None = None) -> list[str]:
    return [e.dedupe_key for e in outbox(kind)]


# -- the world the reports read ----------------------------------------------------------------------

def supporter(address: str) -> Supporter:
    person = Supporter(email=address)
    db.session.add(person)
    db.session.flush()
    return person


def gift(person: Supporter, amount: int, currency: str, paid_at: datetime, *, status=DonationStatus.SUCCEEDED,
         campaign: Campaign | None = None, fee: int | None = None, net: int | None = None,
         settlement: str | None = None) -> Donation:
    donation = Donation(supporter=person, amount=amount, currency=currency, frequency=Frequency.ONE_OFF, status=status,
                        paid_at=paid_at, campaign_id=(campaign or default_campaign()).id, fee=fee, net=net,
                        settlement_currency=settlement)
    db.session.add(donation)
    db.session.flush()
    return donation


def recurring(person: Supporter, amount: int, currency: str, frequency: Frequency, status: RecurringStatus,
              canceled_at: datetime | None = None) -> RecurringDonation:
    row = RecurringDonation(supporter=person, amount=amount, currency=currency, frequency=frequency, status=status,
                            canceled_at=canceled_at, stripe_subscription_id=f"sub_{person.email}_{amount}")
    db.session.add(row)
    return row


def section_lines(body: str, title: str) -> list[str]:
    """The lines of one section of a text body: from its title to the blank line that ends it."""
    lines = body.splitlines()
    start = lines.index(title.upper()) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.fixture
def week(app_ctx):
    """Gifts around the week of 12–18 October 2026, which the report sent on Monday the 19th covers."""
    election = Campaign(slug="election", name="Election fund", headline="h", body="b", button_label="Give",
                        presets={}, default_frequency=Frequency.ONE_OFF)
    db.session.add(election)
    db.session.flush()
    old = supporter("old@example.com")
    gift(old, 5000, "EUR", utc(2026, 9, 1, 12))  # before the week: "old" is not new in it
    gift(old, 1000, "EUR", utc(2026, 10, 13, 9))
    gift(old, 500, "USD", utc(2026, 10, 13, 10))
    new_eur = supporter("new-eur@example.com")
    gift(new_eur, 2500, "EUR", utc(2026, 10, 14, 8), campaign=election)
    gift(new_eur, 1000, "EUR", utc(2026, 10, 18, 23, 59))
    new_usd = supporter("new-usd@example.com")
    gift(new_usd, 3000, "USD", utc(2026, 10, 15, 11), campaign=election)
    both = supporter("both@example.com")
    gift(both, 700, "EUR", utc(2026, 10, 12, 0, 0))
    gift(both, 1200, "USD", utc(2026, 10, 16, 15))
    late = supporter("late@example.com")
    gift(late, 9900, "EUR", utc(2026, 10, 19, 0, 0))  # the send day itself is not in the week
    failed = supporter("failed@example.com")
    gift(failed, 4000, "EUR", utc(2026, 10, 14, 8), status=DonationStatus.FAILED)

    gone = supporter("gone@example.com")
    recurring(gone, 1000, "EUR", Frequency.MONTHLY, RecurringStatus.CANCELED, utc(2026, 10, 13, 9))
    recurring(gone, 500, "EUR", Frequency.MONTHLY, RecurringStatus.CANCELED, utc(2026, 10, 17, 9))
    recurring(gone, 12000, "USD", Frequency.YEARLY, RecurringStatus.CANCELED, utc(2026, 10, 14, 9))
    recurring(gone, 800, "EUR", Frequency.MONTHLY, RecurringStatus.CANCELED, utc(2026, 10, 5, 9))  # earlier
    late_payer = supporter("past-due@example.com")
    recurring(late_payer, 1500, "EUR", Frequency.MONTHLY, RecurringStatus.PAST_DUE)
    recurring(late_payer, 300, "GBP", Frequency.MONTHLY, RecurringStatus.PAST_DUE)
    recurring(late_payer, 2000, "EUR", Frequency.MONTHLY, RecurringStatus.ACTIVE)
    db.session.commit()


@pytest.fixture
def october(app_ctx):
    """Gifts, fees, refunds and disputes around October 2026, which the report of November covers."""
    ada = supporter("ada-reader@example.com")
    eur1 = gift(ada, 2500, "EUR", utc(2026, 10, 5, 10), fee=58, net=2442, settlement="EUR",
                status=DonationStatus.PARTIALLY_REFUNDED)
    eur2 = gift(ada, 1000, "EUR", utc(2026, 10, 31, 23, 59), fee=40, net=960, settlement="EUR")
    gift(ada, 3000, "USD", utc(2026, 10, 10, 10), fee=75, net=2500, settlement="EUR")  # converted by Stripe
    gbp = gift(ada, 2000, "GBP", utc(2026, 10, 12, 10))  # no fee from Stripe yet
    gift(ada, 4400, "EUR", utc(2026, 9, 30, 23, 59), fee=99, net=4301, settlement="EUR")  # September
    gift(ada, 6600, "EUR", utc(2026, 11, 1, 0, 0), fee=99, net=6501, settlement="EUR")  # November
    august = gift(ada, 3000, "USD", utc(2026, 8, 20, 10), fee=75, net=2925, settlement="USD")
    db.session.add_all([
        Refund(donation_id=eur1.id, amount=500, currency="EUR", refunded_at=utc(2026, 10, 21, 9)),
        Refund(donation_id=august.id, amount=1000, currency="USD", refunded_at=utc(2026, 10, 11, 9)),
        Refund(donation_id=eur1.id, amount=300, currency="EUR", refunded_at=utc(2026, 11, 1, 9)),  # November
        Dispute(donation_id=gbp.id, stripe_dispute_id="dp_gbp", amount=2000, currency="GBP", status="needs_response",
                opened_at=utc(2026, 10, 12, 11)),
        Dispute(donation_id=august.id, stripe_dispute_id="dp_usd", amount=3000, currency="USD", status="lost",
                opened_at=utc(2026, 9, 20, 11), closed_at=utc(2026, 10, 15, 11)),
        Dispute(donation_id=eur2.id, stripe_dispute_id="dp_eur", amount=1000, currency="EUR", status="lost",
                opened_at=utc(2026, 10, 25, 11), closed_at=utc(2026, 11, 3, 11)),
    ])
    db.session.commit()


# -- due or not, and exactly once --------------------------------------------------------------------

def test_weekly_report_is_not_sent_before_its_hour(app_ctx):
    configure(WEEKLY, weekday=0, send_hour=7)

    assert send_scheduled_reports(now=utc(2026, 10, 19, 6, 59, 59)) == {"queued": 0, "failed": 0}
    assert outbox() == []


def test_weekly_report_goes_to_each_recipient_once_from_its_hour_on(app_ctx):
    configure(WEEKLY, weekday=0, send_hour=7)

    assert send_scheduled_reports(now=utc(2026, 10, 19, 7, 0)) == {"queued": 2, "failed": 0}
    for hour in (7, 8, 13, 23):
        assert send_scheduled_reports(now=utc(2026, 10, 19, hour, 30)) == {"queued": 0, "failed": 0}
    assert send_scheduled_reports(now=utc(2026, 10, 24, 12)) == {"queued": 0, "failed": 0}  # Saturday

    assert keys() == ["report:weekly_supporters:2026-W43:ada@example.org",
                      "report:weekly_supporters:2026-W43:bob@example.org"]
    assert [e.to_address for e in outbox()] == ["ada@example.org", "bob@example.org"]


def test_a_late_weekly_run_sends_the_missed_report_once_for_the_same_days_and_next_week_sends_the_next(app_ctx):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)

    send_scheduled_reports(now=utc(2026, 10, 22, 15))  # down from Sunday to Thursday afternoon
    send_scheduled_reports(now=utc(2026, 10, 22, 16))
    [first] = outbox()
    assert "12–18 October 2026" in first.subject  # the week before the send day, not before the run

    send_scheduled_reports(now=utc(2026, 10, 26, 7))
    assert keys() == ["report:weekly_supporters:2026-W43:ada@example.org",
                      "report:weekly_supporters:2026-W44:ada@example.org"]
    assert "19–25 October 2026" in outbox()[1].subject


def test_monthly_report_waits_for_the_first_working_day_and_its_hour(app_ctx):
    # 1 August 2026 is a Saturday: the first working day is Monday the 3rd.
    configure(MONTHLY, working_day=1, send_hour=7)

    for now in (utc(2026, 8, 1, 7), utc(2026, 8, 2, 12), utc(2026, 8, 3, 6, 59)):
        send_scheduled_reports(now=now)
    assert outbox() == []

    send_scheduled_reports(now=utc(2026, 8, 3, 7))
    assert keys() == ["report:monthly_accounting:2026-08:ada@example.org",
                      "report:monthly_accounting:2026-08:bob@example.org"]
    assert all(e.subject.startswith("Accounting report for July 2026") for e in outbox())


def test_monthly_report_on_the_third_working_day_goes_out_once_however_often_and_late_the_job_runs(app_ctx):
    configure(MONTHLY, ["ada@example.org"], working_day=3, send_hour=9)  # 4 November 2026, a Wednesday

    send_scheduled_reports(now=utc(2026, 11, 4, 8, 59))
    assert outbox() == []
    for now in (utc(2026, 11, 20, 10), utc(2026, 11, 21, 10), utc(2026, 11, 30, 23, 59)):  # late, then again
        send_scheduled_reports(now=now)
    send_scheduled_reports(now=utc(2026, 12, 3, 10))  # December: its third working day is Thursday the 3rd
    send_scheduled_reports(now=utc(2026, 12, 3, 11))

    assert keys() == ["report:monthly_accounting:2026-11:ada@example.org",
                      "report:monthly_accounting:2026-12:ada@example.org"]
    assert [e.subject.split(" · ")[0] for e in outbox()] == ["Accounting report for October 2026",
                                                            "Accounting report for November 2026"]


def test_changing_the_day_or_hour_after_the_report_went_out_does_not_send_it_again(app_ctx):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)
    send_scheduled_reports(now=utc(2026, 10, 19, 8))

    configure(WEEKLY, ["ada@example.org"], weekday=2, send_hour=3)
    send_scheduled_reports(now=utc(2026, 10, 21, 4))

    assert len(outbox()) == 1


def test_a_recipient_added_later_in_the_period_gets_that_periods_report_and_the_others_no_second(app_ctx):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)
    send_scheduled_reports(now=utc(2026, 10, 19, 8))
    configure(WEEKLY, ["ada@example.org", "carol@example.org"], weekday=0, send_hour=7)

    assert send_scheduled_reports(now=utc(2026, 10, 19, 9)) == {"queued": 1, "failed": 0}
    assert [e.to_address for e in outbox()] == ["ada@example.org", "carol@example.org"]


def test_disabled_reports_are_not_sent(app_ctx):
    configure(WEEKLY, enabled=False)
    configure(MONTHLY, enabled=False)

    send_scheduled_reports(now=utc(2026, 11, 2, 12))

    assert outbox() == []


def test_both_reports_due_at_once_both_go_out(app_ctx):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)
    configure(MONTHLY, ["bob@example.org"], working_day=1, send_hour=7)

    assert send_scheduled_reports(now=utc(2026, 11, 2, 7)) == {"queued": 2, "failed": 0}
    assert sorted(keys()) == ["report:monthly_accounting:2026-11:bob@example.org",
                              "report:weekly_supporters:2026-W45:ada@example.org"]


def test_a_failing_report_is_logged_and_the_other_still_goes_out_and_it_follows_on_the_next_run(
        app_ctx, monkeypatch, caplog):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)
    configure(MONTHLY, ["bob@example.org"], working_day=1, send_hour=7)

    def broken(period):
        raise RuntimeError("the accounting figures are broken")

    monkeypatch.setitem(summaries.CONTEXTS, MONTHLY, broken)
    assert send_scheduled_reports(now=utc(2026, 11, 2, 7)) == {"queued": 1, "failed": 1}
    assert keys() == ["report:weekly_supporters:2026-W45:ada@example.org"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "report monthly_accounting could not be queued"]

    monkeypatch.undo()
    assert send_scheduled_reports(now=utc(2026, 11, 2, 8)) == {"queued": 1, "failed": 0}
    assert sorted(keys()) == ["report:monthly_accounting:2026-11:bob@example.org",
                              "report:weekly_supporters:2026-W45:ada@example.org"]


def test_a_failing_recipient_does_not_cost_the_others_their_report_and_is_retried_next_hour(app_ctx, monkeypatch):
    configure(WEEKLY, ["ada@example.org", "bob@example.org", "carol@example.org"], weekday=0, send_hour=7)
    real_queue = summaries.outbox.queue

    def queue(template, to_address, context, *, dedupe_key, attachments=None):
        # written, then the failure undoes it
        real_queue(template, to_address, context, dedupe_key=dedupe_key, attachments=attachments)
        if to_address == "bob@example.org":
            raise OSError("disk full")

    monkeypatch.setattr(summaries.outbox, "queue", queue)
    assert send_scheduled_reports(now=utc(2026, 10, 19, 7)) == {"queued": 2, "failed": 1}
    assert [e.to_address for e in outbox()] == ["ada@example.org", "carol@example.org"]

    monkeypatch.undo()
    send_scheduled_reports(now=utc(2026, 10, 19, 8))
    assert sorted(e.to_address for e in outbox()) == ["ada@example.org", "bob@example.org", "carol@example.org"]


def test_the_job_is_registered_hourly_and_never_skipped(app):
    scheduler = build_scheduler(app)
    job = next(j for j in scheduler.get_jobs() if j.id == "reports.scheduled")

    assert job.args[1] is send_scheduled_reports
    assert str(job.trigger.fields[job.trigger.FIELD_NAMES.index("minute")]) == "0"
    assert str(job.trigger.fields[job.trigger.FIELD_NAMES.index("hour")]) == "*"
    for option, value in JOB_DEFAULTS.items():
        assert getattr(job, option, scheduler._job_defaults[option]) == value


# -- what the reports say ----------------------------------------------------------------------------

def test_weekly_report_counts_new_and_lost_supporters_past_due_gifts_and_top_campaigns_per_currency(week):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)
    send_scheduled_reports(now=utc(2026, 10, 19, 7))
    [report] = outbox()
    body = report.body_text

    assert report.subject == "Supporters, 12–18 October 2026 · The Riverside Chronicle"
    assert "12 October 2026 to 18 October 2026 (UTC)" in body
    assert section_lines(body, "Raised in the week") == [
        "- Currency: EUR, Gifts: 4, Amount: €52.00",
        "- Currency: USD, Gifts: 3, Amount: $47.00",
    ]
    assert section_lines(body, "New supporters") == [
        "- Currency: EUR, Supporters: 2, Gifts: 3, Amount: €42.00",
        "- Currency: USD, Supporters: 2, Gifts: 2, Amount: $42.00",
        "3 supporters gave for the first time. The amount is what they gave in the week; someone who gave in "
        "two currencies is counted under each.",
    ]
    assert section_lines(body, "Recurring gifts cancelled") == [
        "- Currency: EUR, Frequency: monthly, Gifts: 2, Amount per period: €15.00",
        "- Currency: USD, Frequency: yearly, Gifts: 1, Amount per period: $120.00",
    ]
    assert section_lines(body, "Recurring gifts past due now") == [
        "- Currency: EUR, Frequency: monthly, Gifts: 1, Amount per period: €15.00",
        "- Currency: GBP, Frequency: monthly, Gifts: 1, Amount per period: £3.00",
    ]
    assert section_lines(body, "Top campaigns") == [
        "- Currency: EUR, Campaign: Default ask, Raised: €27.00",
        "- Currency: EUR, Campaign: Election fund, Raised: €25.00",
        "- Currency: USD, Campaign: Election fund, Raised: $30.00",
        "- Currency: USD, Campaign: Default ask, Raised: $17.00",
    ]
    for summed in ("99.00", "94.00", "84.00", "135.00"):  # EUR and USD added together anywhere
        assert summed not in body and summed not in report.body_html
    assert "<td style=\"text-align: right; padding: 0.25rem 0.5rem;\">€52.00</td>" in report.body_html


def test_weekly_report_of_a_quiet_week_says_so(app_ctx):
    configure(WEEKLY, ["ada@example.org"], weekday=0, send_hour=7)
    send_scheduled_reports(now=utc(2026, 10, 19, 7))
    body = outbox()[0].body_text

    assert section_lines(body, "New supporters") == ["No new supporters this week."]
    assert section_lines(body, "Top campaigns") == ["No gifts through a campaign this week."]


def test_monthly_report_has_gifts_fees_refunds_and_disputes_of_the_previous_month_per_currency(october):
    configure(MONTHLY, ["ada@example.org"], working_day=1, send_hour=7)
    send_scheduled_reports(now=utc(2026, 11, 2, 7))
    [report] = outbox()
    body = report.body_text

    assert report.subject == "Accounting report for October 2026 · The Riverside Chronicle"
    assert "1 October 2026 to 31 October 2026 (UTC)" in body
    assert section_lines(body, "Gifts") == [
        "- Currency: EUR, Gifts: 2, Gross: €35.00",
        "- Currency: GBP, Gifts: 1, Gross: £20.00",
        "- Currency: USD, Gifts: 1, Gross: $30.00",
    ]
    assert section_lines(body, "Stripe fees") == [
        "- Settlement currency: EUR, Gifts: 3, Fees: €1.73, Net: €59.02",  # the USD gift settled in EUR
        "In the currency each payment settled in. 1 gift of the month has no fee from Stripe yet and is not "
        "included.",
    ]
    assert section_lines(body, "Refunds") == [
        "- Currency: EUR, Refunds: 1, Amount: €5.00",
        "- Currency: USD, Refunds: 1, Amount: $10.00",
    ]
    assert section_lines(body, "Disputes opened") == [
        "- Currency: EUR, Disputes: 1, Amount: €10.00",
        "- Currency: GBP, Disputes: 1, Amount: £20.00",
    ]
    assert section_lines(body, "Disputes lost") == ["- Currency: USD, Disputes: 1, Amount: $30.00"]
    for summed in ("85.00", "65.00", "15.00"):  # gross or refunds of different currencies added together
        assert summed not in body
    assert section_lines(body, "Payouts")[0] == "No payouts arrived in the month."


def test_monthly_report_lists_the_month_s_payouts_per_currency_and_those_that_do_not_add_up(app_ctx):
    def payout(payout_id, amount, currency, arrival, lines_total, status="paid"):
        db.session.add(Payout(stripe_payout_id=payout_id, amount=amount, currency=currency, status=status,
                              created=utc(2026, 9, 28, 0), arrival_date=arrival, lines_total=lines_total))

    payout("po_a", 10000, "EUR", date(2026, 10, 1), 10000)
    payout("po_b", 5000, "EUR", date(2026, 10, 31), 4977)  # 23 cents the lines do not explain
    payout("po_c", 7000, "USD", date(2026, 10, 15), None)  # Stripe's lines not fetched yet
    payout("po_d", 9999, "EUR", date(2026, 11, 1), 9999)  # November's
    payout("po_e", 8888, "EUR", date(2026, 10, 20), None, status="failed")
    db.session.commit()
    configure(MONTHLY, ["ada@example.org"])
    send_scheduled_reports(now=utc(2026, 11, 2, 7))

    assert section_lines(outbox()[0].body_text, "Payouts") == [
        "- Currency: EUR, Payouts: 2, To the bank: €150.00, Not adding up: 1, Lines not fetched yet: 0",
        "- Currency: USD, Payouts: 1, To the bank: $70.00, Not adding up: 0, Lines not fetched yet: 1",
        "By arrival day. A payout that does not add up is listed with its difference at /staff/payouts.",
    ]


# -- delivery ----------------------------------------------------------------------------------------

def test_a_scheduled_report_reaches_a_real_smtp_server(week, smtp_server, monkeypatch):
    host, port, messages = smtp_server
    monkeypatch.setitem(current_app.config, "SMTP_URL", f"smtp://{host}:{port}")
    configure(WEEKLY, ["ada@example.org", "bob@example.org"], weekday=0, send_hour=7)

    send_scheduled_reports(now=utc(2026, 10, 19, 7))
    assert send_due()["sent"] == 2
    send_scheduled_reports(now=utc(2026, 10, 19, 8))  # the next hour: nothing new
    assert send_due()["sent"] == 0

    assert sorted(m.rcpt_tos[0] for m in messages) == ["ada@example.org", "bob@example.org"]
    message = email.message_from_bytes(messages[0].content, policy=policy.default)
    assert message["Subject"] == "Supporters, 12–18 October 2026 · The Riverside Chronicle"
    assert "- Currency: EUR, Supporters: 2, Gifts: 3, Amount: €42.00" in message.get_body(("plain",)).get_content()
    assert "€42.00" in message.get_body(("html",)).get_content()
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)
                             .where(OutboxEmail.status == EmailStatus.SENT)) == 2
