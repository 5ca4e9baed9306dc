"""What the benchmark tests share: wrk, and `flask --app app bench …` in a process of its own."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from donations.bench.results import ROOT


@pytest.fixture
def wrk():
    if not shutil.which("wrk"):
        pytest.skip("needs wrk (apt-get install wrk); .ci/run installs it")


def bench_env(database_url: str) -> dict[str, str]:
    """This environment without the test run's own Stripe, SMTP and Flask settings, on ``database_url``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "SMTP_", "FLASK_")) and k not in ("DATABASE_URL", "DONATIONS_ENV")}
    env["DATABASE_URL"] = database_url
    return env


def run_bench(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`flask --app app bench <args>` as make bench runs it."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
