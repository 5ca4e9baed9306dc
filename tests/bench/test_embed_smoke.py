"""The embed benchmark's harness end to end (the smoke run CI keeps working): gunicorn, wrk, the results files.

No timing is asserted: the machine is shared. What must hold is that every target answered 2xx under load
(the verdict for a missing endpoint, "not measured", is tested in tests/unit/test_bench_embed_summary.py) and that
both files were written.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from donations.bench.embed import TARGETS
from donations.bench.results import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def wrk():
    if not shutil.which("wrk"):
        pytest.skip("needs wrk (apt-get install wrk); .ci/run installs it")


def test_smoke_run_loads_every_target_and_writes_both_results_files(postgres, committing_app, wrk, tmp_path):
    output = tmp_path / "benchmarks.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "SMTP_", "FLASK_")) and k not in ("DATABASE_URL", "DONATIONS_ENV")}
    env["DATABASE_URL"] = committing_app.config["SQLALCHEMY_DATABASE_URI"]

    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "bench", "embed", "--smoke",
                           "--output", str(output)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "SMTP_", "FLASK_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'bench.sqlite3'}", DONATIONS_ENV="development")

    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "bench", "embed", "--smoke",
                           "--output", str(tmp_path / "b.json")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)

    assert done.returncode == 2
    assert "the benchmarks run against PostgreSQL" in done.stderr
    assert not (tmp_path / "b.json").exists()
