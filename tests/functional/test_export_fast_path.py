"""The donations CSV made by PostgreSQL (donation_csv_lines) is byte for byte the CSV that the Python path
(donation_cells through csv_cell and csv.writer) writes, for every awkward value, by period and by payout."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone

import pytest

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, Frequency, LedgerLine, LineKind, Payout, Supporter
from donations.reports.exports import DONATIONS, donation_csv_lines
from donations.reports.registry import ExportParams, csv_cell, csv_chunks, write_csv
from tests.factories import default_campaign

AWKWARD_TEXTS = [
    "Reader, Ada", 'Ada "the reader"', "Ada\rReader", "Ada\nReader", "Ada\r\nReader", "=HYPERLINK(\"x\")",
    "+31 6", "-minus", "@handle", "\tTabbed", "\rCR first", "Zoë Ünïcødé 読者 🎉", "", None, "plain",
    "'already quoted", " space first", "a,b\r\n=c",
]
YEAR = ExportParams(start=date(2026, 1, 1), end=date(2026, 12, 31))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def python_csv(params: ExportParams) -> str:
    """The reference: the rows path, whatever the database."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DONATIONS.columns)
    for row in DONATIONS.rows(params):
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()


def sql_csv(params: ExportParams) -> str:
    lines = donation_csv_lines(params)
    assert lines is not None, "the fast path declined"
    header = io.StringIO()
    csv.writer(header, lineterminator="\r\n").writerow(DONATIONS.columns)
    return header.getvalue() + "".join(line + "\r\n" for line in lines)


@pytest.fixture
def awkward(app_ctx, postgres):
    """Donations with every kind of value the export has to write."""
    return add_awkward()


def add_awkward() -> list[Donation]:
    campaign = default_campaign()
    payout = Payout(stripe_payout_id="po_Awkward1", amount=1, currency="EUR", status="paid",
                    created=utc(2026, 5, 1), arrival_date=date(2026, 5, 3))
    db.session.add(payout)
    donations = []
    currencies = [("EUR", None, None), ("JPY", None, None), ("BHD", None, None), ("USD", "EUR", "0.92"),
                  ("JPY", "EUR", "0.0061234"), ("EUR", "GBP", "1.17500"), ("BHD", "USD", "2.6596")]
    for i, text in enumerate(AWKWARD_TEXTS):
        currency, settled, rate = currencies[i % len(currencies)]
        supporter = Supporter(email=f"{text or 'x'}{i}@example.com".replace("\n", "n") if i % 3 else f"r{i}@ex.com",
                              name=text)
        paid = None if i % 5 == 4 else utc(2026, 3, 1 + i, 12, 30, 5, 0 if i % 2 else 123 + i)
        donation = Donation(
            supporter=supporter, campaign_id=campaign.id if i % 4 else None, amount=100 + 997 * i,
            currency=currency, frequency=list(Frequency)[i % 3],
            status=DonationStatus.PARTIALLY_REFUNDED if i % 6 == 1 else DonationStatus.SUCCEEDED,
            article_url=text and f"https://publisher.example/a?x={text}", amount_refunded=50 if i % 6 == 1 else 0,
            stripe_payment_intent_id=f"pi_{i}" if i % 2 else None, stripe_invoice_id=f"in_{i}" if i % 3 else None,
            stripe_subscription_id=f"sub_{i}" if i % 3 == 1 else None, receipt_number=f"R-{i}" if paid else None,
            fee=None if i % 7 == 3 else 30 + i, net=None if i % 7 == 3 else (-150 - i if i % 4 == 2 else 70 + i),
            settlement_currency=settled, exchange_rate=rate, paid_at=paid,
            booked_on=(paid.date() if i % 3 else date(2026, 4, 1)) if paid else None,
            booking_note=text if i % 2 else "Booked on 2026-04-01: March was closed, \"late\"",
            created_at=utc(2026, 2, 1 + i, 8, 0, 0, 999999 if i % 2 else 0),
        )
        donations.append(donation)
        db.session.add(donation)
        db.session.flush()
        if i % 2:
            db.session.add(LedgerLine(key=f"txn_{i}:amount", kind=LineKind.GIFT, amount=donation.amount,
                                      currency=donation.settlement_currency or currency, occurred_at=utc(2026, 4, 1),
                                      booked_on=date(2026, 4, 1), stripe_balance_transaction_id=f"txn_{i}",
                                      donation_id=donation.id, payout_id=payout.id))
    db.session.flush()
    return donations


def test_the_sql_lines_are_the_python_csv_byte_for_byte_for_a_period(awkward):
    expected = python_csv(YEAR)

    assert expected.count("\r\n") > len(AWKWARD_TEXTS)  # every donation, some with line ends inside
    assert sql_csv(YEAR) == expected


def test_the_sql_lines_are_the_python_csv_byte_for_byte_for_a_payout(awkward):
    params = ExportParams(payout_id="po_Awkward1")
    expected = python_csv(params)

    assert len(list(csv.reader(io.StringIO(expected)))) == 1 + len(AWKWARD_TEXTS) // 2
    assert sql_csv(params) == expected


def test_the_writers_take_the_sql_lines_on_postgresql(awkward):
    out = io.StringIO()

    count = write_csv(DONATIONS, out, YEAR)

    assert count == len(AWKWARD_TEXTS)
    assert out.getvalue() == python_csv(YEAR)
    assert "".join(csv_chunks(DONATIONS, YEAR, bom=True, size=100)) == "\ufeff" + python_csv(YEAR)


@pytest.mark.parametrize(("rate", "written"), [("1E-7", ",1E-7,"), ("0.0000001", ",1E-7,"), ("abc", ",,"),
                                               (" 1.5", ",1.5,")])
def test_a_rate_only_python_writes_exactly_sends_the_export_down_the_python_path(awkward, rate, written):
    awkward[0].exchange_rate, awkward[0].settlement_currency = rate, "USD"
    db.session.flush()

    assert donation_csv_lines(YEAR) is None
    out = io.StringIO()
    write_csv(DONATIONS, out, YEAR)
    assert written + "2026-04-01," in out.getvalue()
    assert out.getvalue() == python_csv(YEAR)


def test_an_empty_period_has_only_the_header(app_ctx, postgres):
    empty = ExportParams(start=date(1999, 1, 1), end=date(1999, 1, 31))

    assert sql_csv(empty) == python_csv(empty) == ",".join(DONATIONS.columns) + "\r\n"



def test_a_currency_stored_other_than_babel_spells_it_sends_the_export_down_the_python_path(awkward):
    awkward[1].currency = "jpy"
    db.session.flush()

    assert donation_csv_lines(YEAR) is None
    out = io.StringIO()
    write_csv(DONATIONS, out, YEAR)
    assert ",jpy," in out.getvalue()
    assert out.getvalue() == python_csv(YEAR)


@pytest.mark.parametrize("batch", [1, 3, len(AWKWARD_TEXTS), len(AWKWARD_TEXTS) + 1])
def test_copies_in_batches_keep_the_order_and_every_row_once(awkward, monkeypatch, batch):
    # Two more at the very moment of another (ties in the order's time, broken by id) and one unpaid created
    # then: a batch that ends inside a tie must start the next one at the right donation.
    for donation in awkward[:2]:
        db.session.add(Donation(supporter=donation.supporter, amount=500, currency="EUR", frequency=Frequency.ONE_OFF,
                                paid_at=awkward[2].paid_at,
                                booked_on=awkward[2].booked_on, status=DonationStatus.SUCCEEDED,
                                created_at=utc(2026, 1, 5)))
    db.session.add(Donation(supporter=awkward[0].supporter, amount=700, currency="EUR", frequency=Frequency.MONTHLY,
                            status=DonationStatus.PENDING, created_at=awkward[2].paid_at))
    db.session.flush()
    monkeypatch.setattr("donations.reports.exports.COPY_BATCH", batch)

    assert sql_csv(YEAR) == python_csv(YEAR)
    assert len(list(csv.reader(io.StringIO(sql_csv(YEAR))))) == 1 + len(AWKWARD_TEXTS) + 3


def test_progress_is_written_between_copies_on_the_copys_own_connection(awkward, monkeypatch):
    # The tests bind every session to one connection, as a progress write sharing the export's would: it must
    # wait for the end of a COPY (psycopg refuses a statement in the middle of one).
    from sqlalchemy import select as select_

    monkeypatch.setattr("donations.reports.exports.COPY_BATCH", 4)
    seen = []

    def progress(done: int) -> None:
        seen.append((done, db.session.scalar(select_(db.func.count()).select_from(Donation))))

    out = io.StringIO()
    count = write_csv(DONATIONS, out, YEAR, progress, every=2)

    assert count == len(AWKWARD_TEXTS)
    assert [done for done, _ in seen] == list(range(2, count + 1, 2))
    assert out.getvalue() == python_csv(YEAR)


def test_one_copy_on_a_connection_of_its_own_while_progress_is_written_on_others(postgres, committing_app,
                                                                                monkeypatch):
    # Outside the tests' one connection, the export takes a connection of its own for a single COPY; the
    # progress callback uses the app's session (another connection) in the middle of it.
    from donations.reports import exports

    copies = []
    copy_lines = exports._copy_lines

    def spied(connection, query):
        copies.append(connection.connection.driver_connection)
        return copy_lines(connection, query)

    monkeypatch.setattr(exports, "_copy_lines", spied)
    monkeypatch.setattr(exports, "COPY_BATCH", 2)  # were it batched, there would be several COPYs
    with committing_app.app_context():
        add_awkward()
        db.session.commit()
        seen = []

        progress_connections = set()

        def progress(done: int) -> None:
            seen.append((done, db.session.scalar(db.select(db.func.count()).select_from(Donation))))
            progress_connections.add(db.session.connection().connection.driver_connection)

        out = io.StringIO()
        count = write_csv(DONATIONS, out, YEAR, progress, every=2)

        assert count == len(AWKWARD_TEXTS)
        assert seen[0] == (2, len(AWKWARD_TEXTS))  # written while the COPY was still running
        assert [done for done, _ in seen] == list(range(2, count + 1, 2))
        assert out.getvalue() == python_csv(YEAR)
        assert len(copies) == 1 and copies[0] not in progress_connections
