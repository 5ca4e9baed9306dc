"""One active scheduler on PostgreSQL: the advisory lock on a connection of its own, a leader that steps
down when that connection dies, and (scenario 4) two real scheduler processes, one killed with kill -9."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, text

from donations.db import now_utc
from donations.extensions import db
from donations.job_runs import JobRun
from donations.leader import PostgresLease
from donations.scheduler import registered_jobs, run_scheduler
from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg(postgres, committing_app):
    """PostgreSQL, with the lock row and job runs (committed by other connections) removed afterwards."""
    return committing_app


def terminate(app, backend_pid: int) -> None:
    """End a server process as a database restart (or an administrator) would."""
    with app.app_context(), db.engine.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}).scalar_one()


def test_only_one_lease_holds_the_advisory_lock(pg):
    a, b = PostgresLease(POSTGRES_URL, "host-a:1"), PostgresLease(POSTGRES_URL, "host-b:2")
    try:
        assert a.acquire() is True
        assert b.acquire() is False
        assert a.renew() is True and b.renew() is False
        a.release()
        assert b.acquire() is True  # a clean stop frees it at once
    finally:
        a.release()
        b.release()


def test_a_leader_whose_lock_connection_dies_knows_it_and_the_standby_takes_over(pg):
    a, b = PostgresLease(POSTGRES_URL, "host-a:1"), PostgresLease(POSTGRES_URL, "host-b:2")
    try:
        assert a.acquire() and not b.acquire()

        terminate(pg, a.backend_pid)  # the lock dies with the connection

        assert a.renew() is False
        assert b.acquire() is True
        assert b.previous == "host-a:1"
        assert a.acquire() is False  # a fresh connection, but the lock is b's now
    finally:
        a.release()
        b.release()


def test_the_leader_stops_its_jobs_when_the_lock_is_lost_and_stands_by(pg, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="donations.scheduler")
    monkeypatch.setitem(pg.config, "SCHEDULER_HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setitem(pg.config, "SCHEDULER_STANDBY_POLL_SECONDS", 1)
    ticks: list[float] = []
    schedulers: list[BackgroundScheduler] = []

    def factory(app):
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(lambda: ticks.append(time.monotonic()), "interval", seconds=0.1)
        schedulers.append(scheduler)
        return scheduler

    lease, rival = PostgresLease(POSTGRES_URL, "host-a:1"), PostgresLease(POSTGRES_URL, "host-b:2")
    stop = threading.Event()
    loop = threading.Thread(target=run_scheduler, args=(pg, stop, lease, factory))
    loop.start()
    try:
        wait_for(lambda: ticks, 10)
        terminate(pg, lease.backend_pid)
        assert rival.acquire() is True  # another process gets the lock while the database is back

        wait_for(lambda: "lost the lock" in caplog.text, 10)
        wait_for(lambda: not schedulers[0].running, 10)  # its jobs stopped
        stopped_at = time.monotonic()
        time.sleep(1)
        assert [t for t in ticks if t > stopped_at] == []  # and nothing runs while the other one leads
        wait_for(lambda: "standby:" in caplog.text, 10)

        rival.release()
        wait_for(lambda: len(schedulers) == 2 and schedulers[1].running, 10)  # it leads again
    finally:
        stop.set()
        loop.join(30)
        rival.release()
    assert not loop.is_alive()
    messages = [r.getMessage() for r in caplog.records if r.name == "donations.scheduler"]
    # The rival stopped cleanly (the row names no leader), so the old leader simply leads again.
    assert [m.split(":")[0] for m in messages if m.startswith(("leader", "lost", "standby", "took"))] == [
        "leader", "lost the lock", "standby", "leader"]


def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- scenario 4: two real scheduler processes -------------------------------------------------------

TICK, POLL = 1, 1


def start_scheduler(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STRIPE_", "SMTP_", "SCHEDULER_")) and key not in ("DONATIONS_ENV",)}
    env.update(DATABASE_URL=POSTGRES_URL, SCHEDULER_TICK_SECONDS=str(TICK), SCHEDULER_STANDBY_POLL_SECONDS=str(POLL),
               SCHEDULER_HEARTBEAT_SECONDS="1", EXPORT_DIR=str(tmp_path / "exports"), PYTHONUNBUFFERED="1")
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scheduler", "run"], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def runs_since(app, since) -> list[tuple[str, str, object]]:
    with app.app_context():
        rows = db.session.execute(select(JobRun.job_id, JobRun.process, JobRun.started_at)
                                  .where(JobRun.started_at >= since)).all()
        db.session.remove()
    return [tuple(row) for row in rows]


@pytest.fixture
def schedulers(pg, tmp_path):
    started: list[subprocess.Popen] = []

    def start(name: str):
        process, log = start_scheduler(tmp_path, name)
        started.append(process)
        return process, log

    yield start
    for process in started:  # always, whatever the test did
        if process.poll() is None:
            process.kill()
        process.wait(30)


@pytest.mark.slow
def test_two_scheduler_processes_run_each_job_once_per_tick_and_the_standby_takes_over_after_kill_9(
        pg, schedulers, tmp_path):
    (a, a_log), (b, b_log) = schedulers("a"), schedulers("b")
    logs = lambda: a_log.read_text() + "\n----\n" + b_log.read_text()  # noqa: E731
    processes = {f"{socket.gethostname()}:{p.pid}": p for p in (a, b)}
    jobs = {job.id for job in registered_jobs(pg.config)}
    began = now_utc()

    # Both are up when one leads and the other has said it stands by (the start-up can be slow on a busy machine).
    wait_for(lambda: "standby:" in logs() and ("leader:" in logs() or "took over:" in logs()), 120)
    wait_for(lambda: {job for job, _, _ in runs_since(pg, began)} == jobs, 30)
    window = now_utc()
    time.sleep(10 * TICK + 0.5)
    in_window = [(job, process) for job, process, at in runs_since(pg, window) if at < window + timedelta(seconds=10 * TICK)]

    per_job = Counter(job for job, _ in in_window)
    assert set(per_job) == jobs, logs()
    # One leader: about 10 runs of each job in 10 ticks (two leaders would make about 20); a tick may be
    # coalesced away on a loaded machine, never doubled.
    assert all(6 <= count <= 11 for count in per_job.values()), (per_job, logs())
    leaders = {process for _, process, _ in runs_since(pg, began)}
    assert len(leaders) == 1, (leaders, logs())
    [leader] = leaders
    standby = processes[next(name for name in processes if name != leader)]

    processes[leader].send_signal(signal.SIGKILL)
    processes[leader].wait(10)
    killed = now_utc()
    wait_for(lambda: any(process != leader for _, process, _ in runs_since(pg, killed)), POLL + TICK + 10)
    took = min(at for _, process, at in runs_since(pg, killed) if process != leader)

    assert took - killed <= timedelta(seconds=POLL + TICK + 5), (took - killed, logs())
    assert {process for _, process, _ in runs_since(pg, killed)} == {f"{socket.gethostname()}:{standby.pid}"}
    assert "took over:" in b_log.read_text() + a_log.read_text()
    # Every job runs again, in the standby: waited for, as a loaded machine may run a tick late.
    wait_for(lambda: {job for job, _, _ in runs_since(pg, killed)} == jobs, 30)
    assert {process for _, process, _ in runs_since(pg, killed)} == {f"{socket.gethostname()}:{standby.pid}"}, logs()
