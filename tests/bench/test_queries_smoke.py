"""`flask --app app bench queries --smoke` end to end on a small seed: every page answered rightly, both results
files written, the bench staff user gone afterwards. No timing is asserted: the machine is shared.
"""
from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import text

from donations.bench import queries
from donations.bench import seed as seeding
from donations.extensions import db
from tests.bench.conftest import bench_env, run_bench

pytestmark = pytest.mark.slow

KINDS = ["dashboard (GET /staff/, default periods)", "supporter search: full email", "supporter search: email prefix",
         "supporter search: part of a name", "supporter search: Stripe customer id", "supporter search: no match",
         "SELECT 1 through the same session (context)"]


@pytest.fixture
def seeded(postgres, committing_app):
    app = committing_app
    result = app.test_cli_runner().invoke(args=["bench", "seed", "--donations", "500", "--supporters", "100",
                                                "--seed", "5", "--force"])
    assert result.exit_code == 0, result.output
    yield app
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(seeding.TABLES)} CASCADE"))
        conn.execute(text("DELETE FROM campaigns WHERE slug LIKE 'bench-%'"))


def run_queries(app, *args: str) -> subprocess.CompletedProcess:
    return run_bench(bench_env(app.config["SQLALCHEMY_DATABASE_URI"]), "queries", *args)


def scalar(app, sql: str, **params):
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_smoke_run_requests_every_page_rightly_and_writes_the_queries_section(seeded, tmp_path):
    app = seeded
    output = tmp_path / "benchmarks.json"
    users_before = scalar(app, "SELECT count(*) FROM staff_users")

    done = run_queries(app, "--smoke", "--output", str(output))

    assert done.returncode == 0, done.stdout + done.stderr
    section = json.loads(output.read_text())["sections"]["queries"]
    assert section["smoke"] is True
    assert [row["target"] for row in section["rows"]] == KINDS
    for row in section["rows"]:
        assert row["requests"] == 3, row  # --smoke: 3 requests per kind, one run
        assert row["p50_ms"] is not None and row["p95_ms"] >= row["p50_ms"], row
        assert row["verdict"] == ("context" if row["target"].startswith("SELECT 1") else "not judged (smoke run)")
    assert section["notes"][0] == "The database held 500 donations and 100 supporters."
    # The dashboard was measured as the scheduler leaves it: with today's snapshot, taken by its job first.
    assert section["notes"][1].startswith("The dashboard's snapshot of the days before today was taken first")
    assert scalar(app, "SELECT count(*) FROM dashboard_snapshots") == 1
    assert scalar(app, "SELECT max(watermark) FROM dashboard_snapshots") == scalar(app, "SELECT max(id) FROM donations")
    assert any(note.startswith("Slowest query of dashboard") and "Execution Time" in note
               for note in section["notes"])
    page = output.with_suffix(".md").read_text()
    assert "Smoke run" in page and all(kind in page for kind in KINDS)
    # The bench staff user, their session and their audit entries are gone.
    assert scalar(app, "SELECT count(*) FROM staff_users") == users_before
    assert scalar(app, "SELECT count(*) FROM audit_entries WHERE actor_email LIKE :d",
                  d=f"%@{queries.BENCH_EMAIL_DOMAIN}") == 0


def test_an_empty_database_is_a_failed_measurement_not_a_fast_one(postgres, committing_app, tmp_path):
    done = run_queries(committing_app, "--smoke", "--output", str(tmp_path / "b.json"))

    assert done.returncode == 1
    assert "no supporters" in done.stderr
    assert not (tmp_path / "b.json").exists()
