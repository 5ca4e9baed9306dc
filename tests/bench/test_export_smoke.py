"""`flask --app app bench export --smoke` on a small seed: both files hold every donation, cell for cell, the
section is written, and nothing the benchmark adds (its accountant, its export jobs, its files) is left behind.

No timing is asserted: the machine is shared. Skips unless TEST_DATABASE_URL points at PostgreSQL, except the
refusal of SQLite, which runs on SQLite.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from donations.bench import seed as seeding
from donations.bench.export import BENCH_USER
from donations.extensions import db
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.slow

DONATIONS, SUPPORTERS = 500, 100


@pytest.fixture
def seeded(postgres, committing_app):
    app = committing_app
    result = app.test_cli_runner().invoke(args=["bench", "seed", "--donations", str(DONATIONS), "--supporters",
                                                str(SUPPORTERS), "--seed", "5", "--force"])
    assert result.exit_code == 0, result.output
    yield app
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(seeding.TABLES)} CASCADE"))
        conn.execute(text("DELETE FROM campaigns WHERE slug LIKE 'bench-%'"))
        conn.execute(text("DELETE FROM export_jobs"))
        conn.execute(text("DELETE FROM staff_users WHERE email = :email"), {"email": BENCH_USER})


def scalar(app, sql: str, **params):
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_smoke_run_exports_every_donation_both_ways_and_writes_the_section(seeded, tmp_path):
    app = seeded
    output, work = tmp_path / "benchmarks.json", tmp_path / "work"

    result = app.test_cli_runner().invoke(args=["bench", "export", "--smoke", "--output", str(output),
                                                "--work-dir", str(work)])

    assert result.exit_code == 0, result.output
    section = json.loads(output.read_text())["sections"]["export"]
    assert section["smoke"] is True
    rows = {row["measure"].split(" (")[0]: row for row in section["rows"]}
    assert set(rows) == {"time until the CSV file is complete", "wall time, until stored", "peak memory", "rows",
                         "bytes"}
    assert rows["rows"]["app"] == rows["rows"]["reference"] == DONATIONS
    assert rows["rows"]["verdict"] == "exact"
    assert rows["wall time, until stored"]["verdict"] == rows["peak memory"]["verdict"] == "not judged (smoke run)"
    stored = rows["wall time, until stored"]
    assert len(stored["runs_app"]) == len(stored["runs_reference"]) == 1
    assert len(rows["time until the CSV file is complete"]["runs_app"]) == 1
    assert rows["bytes"]["app"] > 0 and rows["bytes"]["reference"] > 0
    assert any(f"cell by cell ({DONATIONS:,} rows)" in note and "they are the same" in note
               for note in section["notes"])
    assert any("export_chunks" in note for note in section["notes"])
    assert not any(note.startswith("Failure") for note in section["notes"])
    page = output.with_suffix(".md").read_text()
    assert "## Export: every donation to CSV" in page and "Smoke run" in page
    # What the benchmark added is gone: its accountant, the job rows, the files (personal data).
    assert scalar(app, "SELECT count(*) FROM staff_users WHERE email = :email", email=BENCH_USER) == 0
    assert scalar(app, "SELECT count(*) FROM export_jobs") == 0
    assert list(work.iterdir()) == []
    assert scalar(app, "SELECT count(*) FROM donations") == DONATIONS


def test_the_export_benchmark_refuses_sqlite_with_a_clear_message(app, tmp_path):
    if POSTGRES_URL:
        pytest.skip("runs on SQLite")

    result = app.test_cli_runner().invoke(args=["bench", "export", "--smoke", "--output", str(tmp_path / "b.json")])

    assert result.exit_code == 2
    assert "the benchmarks run against PostgreSQL" in result.output
    assert not (tmp_path / "b.json").exists()
