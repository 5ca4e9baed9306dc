"""Two runs of the statements job at once (the scheduler and `flask statements send`, or two schedulers) on
PostgreSQL: one statement and one email per supporter, numbers without gaps."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text

from donations.extensions import db
from donations.ledger.models import Donation, DonationStatus, Frequency, Supporter
from donations.mail.models import OutboxEmail
from donations.reports.models import AnnualStatement
from donations.reports.statements import issue_statements
from tests.conftest import run_threads

SUPPORTERS = 12


@pytest.fixture
def statements_app(committing_app):
    """committing_app, and the statement tables emptied afterwards (before it empties the supporters)."""
    yield committing_app
    with committing_app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in ("annual_statements", "statement_sequences", "outbox_emails"):
                conn.execute(text(f"DELETE FROM {table}"))


def paid_gifts(app) -> None:
    """One paid gift in 2025 for each of SUPPORTERS supporters, committed as the ledger leaves them."""
    with app.app_context():
        for n in range(SUPPORTERS):
            supporter = Supporter(email=f"race{n}@example.com", name=f"Reader {n}")
            db.session.add(Donation(supporter=supporter, amount=1000 + n, currency="EUR", frequency=Frequency.ONE_OFF,
                                    status=DonationStatus.SUCCEEDED, paid_at=datetime(2025, 5, 1, tzinfo=timezone.utc),
                                    receipt_number=f"2025-{900000 + n:06d}"))
        db.session.commit()


def test_two_runs_at_once_issue_each_statement_once_without_gaps(postgres, statements_app):
    paid_gifts(statements_app)

    def run(_):
        with statements_app.app_context():
            return issue_statements(2025, batch=3)  # small batches: the runs interleave commit by commit

    results = run_threads(2, run)

    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["issued"] for r in results) == SUPPORTERS
    assert sum(r["failed"] for r in results) == 0
    with statements_app.app_context():
        numbers = sorted(db.session.scalars(select(AnnualStatement.number)))
        assert numbers == [f"S2025-{n:06d}" for n in range(1, SUPPORTERS + 1)]
        assert db.session.scalar(select(func.count(func.distinct(AnnualStatement.supporter_id)))) == SUPPORTERS
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)
                                 .where(OutboxEmail.template == "annual_statement")) == SUPPORTERS
