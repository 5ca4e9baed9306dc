"""Several web processes flushing their counts at once, on PostgreSQL with real commits: every impression
and click is added exactly once, and articles first seen by several processes at once get one row.

Each thread stands for one process: its own batch, its own connection and transaction. Skips unless
TEST_DATABASE_URL points at PostgreSQL (SQLite serialises writers, so it cannot show these races).
"""
from __future__ import annotations

import random
from datetime import date

from sqlalchemy import func, select

from donations.campaigns import counting
from donations.campaigns.models import Article, AskCount
from donations.extensions import db
from tests.conftest import run_threads

PROCESSES = 12
ROUNDS = 5
DAYS = [date(2026, 11, 1), date(2026, 11, 2)]
#: Shared by every process; the first sight of each races between them.
URLS = [f"https://publisher.example/news/{n}" for n in range(40)]


def batch_for(process: int, round_: int) -> counting.Batch:
    """A batch whose keys overlap every other process's, in an order of its own."""
    rng = random.Random(process * 1000 + round_)
    counts: dict = {}
    for url in rng.sample(URLS, len(URLS)):
        for day in DAYS:
            counts[(day, "default", "a", url)] = [process + 1, round_ + 1]
    meta = {url: (f"Section {process % 3}", None, None) for url in URLS}
    return counting.Batch(counts, meta)


def test_concurrent_flushes_from_several_processes_add_up_exactly(postgres, committing_app):
    app = committing_app

    def process(index: int) -> int:
        written = 0
        for round_ in range(ROUNDS):
            with app.app_context():
                try:
                    written += counting.write_batch(batch_for(index, round_))["rows"]
                finally:
                    db.session.remove()
        return written

    results = run_threads(PROCESSES, process)

    assert results == [len(URLS) * len(DAYS) * ROUNDS] * PROCESSES
    impressions_each = sum(p + 1 for p in range(PROCESSES)) * ROUNDS
    clicks_each = sum(r + 1 for r in range(ROUNDS)) * PROCESSES
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == len(URLS)
        rows = db.session.execute(select(AskCount.impressions, AskCount.clicks)).all()
        assert len(rows) == len(URLS) * len(DAYS)
        assert {tuple(row) for row in rows} == {(impressions_each, clicks_each)}
        assert set(db.session.scalars(select(Article.section))) <= {f"Section {n}" for n in range(3)}
        db.session.remove()


def test_flush_writes_and_commits_for_real(postgres, committing_app):
    counting.discard()
    counting.record("impression", "default", "a", URLS[0])
    with committing_app.app_context():
        assert counting.flush()["rows"] == 1
        db.session.remove()
    with committing_app.app_context():
        assert db.session.scalar(select(AskCount.impressions)) == 1
        db.session.remove()
