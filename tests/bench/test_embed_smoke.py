"""The embed benchmark's harness end to end (the smoke run CI keeps working): gunicorn, wrk, the results files.

No timing is asserted: the machine is shared. What must hold is that every target answered 2xx under load
(the verdict for a missing endpoint, "not measured", is tested in tests/unit/test_bench_embed_summary.py) and that
both files were written.
"""
from __future__ import annotations

import json

import pytest

from donations.bench.embed import TARGETS
from tests.bench.conftest import bench_env, run_bench

pytestmark = pytest.mark.slow


def test_smoke_run_loads_every_target_and_writes_both_results_files(postgres, committing_app, wrk, tmp_path):
    output = tmp_path / "benchmarks.json"
    env = bench_env(committing_app.config["SQLALCHEMY_DATABASE_URI"])

    done = run_bench(env, "embed", "--smoke", "--output", str(output), timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    section = json.loads(output.read_text())["sections"]["embed"]
    assert section["smoke"] is True
    rows = {row["target"]: row for row in section["rows"]}
    assert set(rows) == {target.name for target in TARGETS}
    for target in TARGETS:
        row = rows[target.name]
        assert 200 <= row["probe_status"] < 300, row
        assert row["requests"] > 0 and row["errors"] == 0, row
        assert row["verdict"] in ("reference", "no target (diagnostic)", "not judged (smoke run)"), row
    page = output.with_suffix(".md").read_text()
    assert "Smoke run" in page
    assert all(target.name in page for target in TARGETS)
    assert f"| PostgreSQL | {section['machine']['postgresql']} |" in page


def test_the_benchmark_refuses_sqlite_with_a_clear_message(wrk, tmp_path):
    env = bench_env(f"sqlite:///{tmp_path / 'bench.sqlite3'}") | {"DONATIONS_ENV": "development"}

    done = run_bench(env, "embed", "--smoke", "--output", str(tmp_path / "b.json"), timeout=120)

    assert done.returncode == 2
    assert "the benchmarks run against PostgreSQL" in done.stderr
    assert not (tmp_path / "b.json").exists()
