"""The outbox benchmark's harness end to end (the smoke run CI keeps working): the app's sender and plain smtplib
each send 200 receipts to an SMTP server in its own process, and the results files are written.

No timing is asserted: the machine is shared. What must hold is the work itself: exactly 200 messages arrived on
each side, every outbox row was sent, nothing the benchmark queued stays behind, and the section is complete.
"""
from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import func, select

from donations.extensions import db
from donations.mail import outbox
from donations.mail.models import OutboxEmail
from tests.bench.conftest import bench_env, run_bench

pytestmark = pytest.mark.slow


def run_outbox_bench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_bench(env, "outbox", *args)


def test_smoke_run_sends_exactly_200_receipts_each_way_and_writes_both_results_files(postgres, committing_app,
                                                                                     tmp_path):
    output = tmp_path / "benchmarks.json"

    done = run_outbox_bench(bench_env(committing_app.config["SQLALCHEMY_DATABASE_URI"]), "--smoke",
                            "--output", str(output))

    assert done.returncode == 0, done.stdout + done.stderr
    section = json.loads(output.read_text())["sections"]["outbox"]
    assert section["smoke"] is True
    reference, app_row = section["rows"]
    assert reference["verdict"] == "reference" and reference["delivered"] == [200]
    assert app_row["verdict"] == "not judged (smoke run)" and app_row["delivered"] == [200]
    assert app_row["messages"] == reference["messages"] == 200
    assert app_row["goal"] == "≥ 0.5" and app_row["ratio"] is not None
    assert all(isinstance(row["cpu_ms_per_message"], float) for row in (reference, app_row))
    assert section["machine"]["aiosmtpd"] and section["machine"]["postgresql"]
    page = output.with_suffix(".md").read_text()
    assert "## Outbox" in page and "Smoke run" in page and "not judged (smoke run)" in page
    with committing_app.app_context():  # the benchmark deletes every row it queued
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0


def test_the_benchmark_refuses_to_send_pending_emails_it_did_not_queue(postgres, committing_app, tmp_path):
    with committing_app.test_request_context():
        outbox.queue("manage_link", "reader@example.com",
                     {"publication": "P", "public_url": "http://x", "name": None, "manage_url": "http://x/a"},
                     dedupe_key="test:not-the-benchmarks")
        db.session.commit()

    done = run_outbox_bench(bench_env(committing_app.config["SQLALCHEMY_DATABASE_URI"]), "--smoke",
                            "--output", str(tmp_path / "b.json"))

    assert done.returncode == 1
    assert "1 pending emails the benchmark did not queue" in done.stderr
    assert not (tmp_path / "b.json").exists()
    with committing_app.app_context():
        assert db.session.scalars(select(OutboxEmail.status)).one() == "pending"


def test_the_outbox_benchmark_refuses_sqlite(tmp_path):
    env = bench_env(f"sqlite:///{tmp_path / 'bench.sqlite3'}")
    env["DONATIONS_ENV"] = "development"

    done = run_outbox_bench(env, "--smoke", "--output", str(tmp_path / "b.json"))

    assert done.returncode == 2
    assert "the benchmarks run against PostgreSQL" in done.stderr
    assert not (tmp_path / "b.json").exists()
