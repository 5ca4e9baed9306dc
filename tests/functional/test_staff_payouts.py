"""/staff/payouts: accountants see each payout beside what its lines add up to, mismatches flagged,
and close periods of the books."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.ledger.models import ClosedPeriod
from donations.ledger.payouts import reconcile_payouts
from donations.staff.models import AuditEntry, Role
from tests.factories import event, post_event
from tests.functional.test_payouts import books, fake_balance  # noqa: F401  (fixtures)
from tests.staff_helpers import in_app, signed_in


def paid_out(client, books, extra: int = 0) -> None:
    books["payout"]["amount"] = books["bank"] + extra
    assert post_event(client, event("payout.paid", books["payout"])).status_code == 200
    reconcile_payouts()


def test_accountant_sees_a_reconciled_payout(books, client):
    paid_out(client, books)
    staff = signed_in(client, Role.ACCOUNTANT)

    html = staff.get("/staff/payouts").get_data(as_text=True)

    assert "po_1" in html and "€39.77" in html and "none" in html
    assert "do not add up" not in html and "does not add up" not in html


def test_a_payout_that_does_not_add_up_is_flagged_with_its_difference(books, client):
    paid_out(client, books, extra=23)
    staff = signed_in(client, Role.ADMIN)

    html = staff.get("/staff/payouts").get_data(as_text=True)

    assert "1 payout does not add up to the bank amount" in html
    assert 'class="mismatch"' in html and "<strong>-€0.23</strong>" in html
    detail = staff.get("/staff/payouts/po_1").get_data(as_text=True)
    assert "-€0.23" in detail and "txn_dp_c" in detail and "dispute fee" in detail


def test_a_payout_waiting_for_its_lines_says_so(books, client):
    post_event(client, event("payout.paid", books["payout"]))
    staff = signed_in(client, Role.ACCOUNTANT)

    html = staff.get("/staff/payouts").get_data(as_text=True)

    assert "1 payout waiting for Stripe's lines" in html and "not fetched yet" in html


def test_unknown_payout_is_404(app_ctx, client):
    staff = signed_in(client, Role.ACCOUNTANT)
    assert staff.get("/staff/payouts/po_nope").status_code == 404


def closed_days(app) -> list[date]:
    with in_app(app):
        return db.session.scalars(select(ClosedPeriod.closed_through)).all()


# Posting forms: no app context of the test's own around the requests (each request gets a fresh `g`,
# as in a browser), so the tests read the database through in_app().

def test_staff_without_the_accountants_role_cannot_see_payouts_or_close_the_books(app, client):
    staff = signed_in(client, Role.STAFF)

    assert staff.get("/staff/payouts").status_code == 403
    assert staff.post("/staff/books/close", {"through": "2026-01-31"}).status_code == 403
    assert closed_days(app) == []


def test_accountant_closes_a_period_and_it_is_audited(app, client):
    staff = signed_in(client, Role.ACCOUNTANT)

    response = staff.post("/staff/books/close", {"through": "2026-09-30"})

    assert response.status_code == 303
    assert closed_days(app) == [date(2026, 9, 30)]
    with in_app(app):
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "books.close")).one()
        assert entry.detail["through"] == "2026-09-30" and entry.actor_email == staff.email
    assert "closed through <strong>2026-09-30</strong>" in staff.get("/staff/payouts").get_data(as_text=True)


def test_closing_backwards_or_with_a_bad_day_is_refused_with_a_message(app, client):
    staff = signed_in(client, Role.ACCOUNTANT)
    staff.post("/staff/books/close", {"through": "2026-09-30"})

    for bad, message in (("2026-08-31", "already closed through 2026-09-30"),
                         ("31/08/2026", "Choose the last day to close"), ("", "Choose the last day to close"),
                         ("9999-12-31", "Only days that have ended")):
        response = staff.post("/staff/books/close", {"through": bad}, follow_redirects=True)
        assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert closed_days(app) == [date(2026, 9, 30)]


def test_closing_without_the_csrf_token_writes_nothing(app, client):
    staff = signed_in(client, Role.ACCOUNTANT)

    response = staff.post("/staff/books/close", {"through": "2026-09-30"}, csrf=False)

    assert response.status_code == 400
    assert closed_days(app) == []


def test_the_payout_page_links_to_a_download_of_that_payout_s_ledger(books, client):
    import csv
    import io
    import re

    paid_out(client, books)
    staff = signed_in(client, Role.ACCOUNTANT)
    html = staff.get("/staff/payouts/po_1").get_data(as_text=True)
    link = re.search(r'href="([^"]*/staff/reports\?[^"]*)"[^>]*>Download this payout', html).group(1)

    response = staff.get(link.replace("&amp;", "&"))

    assert response.status_code == 200
    lines = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(lines) == 20 and {line["payout_id"] for line in lines} == {"po_1"}


def test_a_demo_payout_s_ledger_downloads_from_its_page(app, client):
    """seed-demo names its payouts po_demo_<currency>_<monday>: the link on their page must work too."""
    import csv
    import io
    import re

    from donations import demo
    from donations.ledger.models import Payout

    with in_app(app):
        demo.seed(supporters=8)
        db.session.commit()
        payout_id = db.session.scalars(select(Payout.stripe_payout_id).order_by(Payout.id)).first()
    assert payout_id.startswith("po_demo_") and "_" in payout_id[len("po_"):]
    staff = signed_in(client, Role.ACCOUNTANT)
    html = staff.get(f"/staff/payouts/{payout_id}").get_data(as_text=True)
    link = re.search(r'href="([^"]*/staff/reports\?[^"]*)"[^>]*>Download this payout', html).group(1)

    response = staff.get(link.replace("&amp;", "&"))

    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert f'filename="ledger-{payout_id}.csv"' in response.headers["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert lines and {line["payout_id"] for line in lines} == {payout_id}


@pytest.mark.parametrize("bad", ["po_12 3", "po_1\x00", "po_1'", 'po_1"', "po_", "po_1-2", "po_" + "a" * 251,
                                 "tr_1", "po_1\npo_2"])
def test_a_link_with_a_bad_payout_id_is_refused_with_a_message(app, client, bad):
    staff = signed_in(client, Role.ACCOUNTANT)

    response = staff.get("/staff/reports", query_string={"kind": "ledger", "payout": bad, "format": "csv"})

    assert response.status_code == 400
    if "\x00" not in bad:  # a NUL is refused before any view, with the general 400 page
        assert "is not a Stripe payout id" in response.get_data(as_text=True)
    with in_app(app):
        assert not db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).all()
