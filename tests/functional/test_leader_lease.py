"""The SQLite lock row: one leader at a time, a standby takes over only once the leader's heartbeat is stale.

Two leases in one process stand for two scheduler processes; a clock of their own moves time on.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from donations.extensions import db
from donations.leader import LOCK_NAME, SchedulerLock, SQLiteLease, leadership

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pair(app_ctx, clock):
    """Two scheduler processes on one database, with a 30-second timeout."""
    return SQLiteLease("host-a:1", 30, clock), SQLiteLease("host-b:2", 30, clock)


def row() -> SchedulerLock:
    db.session.expire_all()
    return db.session.get(SchedulerLock, LOCK_NAME)


def test_the_first_takes_the_lock_and_the_second_stands_by(pair, clock):
    a, b = pair

    assert a.acquire() is True
    assert b.acquire() is False
    b.note_standby()

    lock = row()
    assert (lock.holder, lock.acquired_at, lock.heartbeat_at) == ("host-a:1", T0, T0)
    assert (lock.standby, lock.standby_seen_at) == ("host-b:2", T0)


def test_a_leader_that_keeps_its_heartbeat_is_never_replaced(pair, clock):
    a, b = pair
    a.acquire()
    for _ in range(20):  # ten minutes of heartbeats every 30 s would be too few; every 5 s is the default
        clock.advance(25)
        assert a.renew() is True
        assert b.acquire() is False

    assert row().holder == "host-a:1"


def test_a_standby_takes_over_once_the_heartbeat_is_older_than_the_timeout(pair, clock):
    a, b = pair
    a.acquire()
    clock.advance(30)  # exactly the timeout: not yet
    assert b.acquire() is False

    clock.advance(1)
    assert b.acquire() is True
    assert b.previous == "host-a:1"  # logged as "took over"
    lock = row()
    assert (lock.holder, lock.acquired_at) == ("host-b:2", T0 + timedelta(seconds=31))


def test_the_old_leader_learns_it_lost_the_lock_and_cannot_take_it_back(pair, clock):
    a, b = pair
    a.acquire()
    clock.advance(31)  # a stalled for longer than the timeout (a paused VM, a stopped process)
    assert b.acquire() is True

    assert a.renew() is False  # so it stops its jobs
    assert a.acquire() is False  # and stands by: b's heartbeat is fresh
    assert row().holder == "host-b:2"


def test_of_two_standbys_only_one_takes_over(app_ctx, clock):
    a, b, c = (SQLiteLease(f"host:{n}", 30, clock) for n in (1, 2, 3))
    a.acquire()
    clock.advance(60)

    assert [b.acquire(), c.acquire()] == [True, False]
    assert row().holder == "host:2"


def test_a_clean_stop_frees_the_lock_at_once(pair, clock):
    a, b = pair
    a.acquire()
    a.release()

    assert b.acquire() is True
    assert b.previous is None  # nothing was taken from anyone


def test_release_by_a_process_that_lost_the_lock_frees_nothing(pair, clock):
    a, b = pair
    a.acquire()
    clock.advance(31)
    b.acquire()

    a.release()

    assert row().holder == "host-b:2"


def test_the_new_leader_is_no_longer_shown_as_standby(pair, clock):
    a, b = pair
    a.acquire()
    b.acquire()
    b.note_standby()
    a.release()

    b.acquire()

    assert row().standby is None


def test_staff_see_a_silent_leader_as_stale(pair, clock):
    a, _ = pair
    a.acquire()

    assert leadership(T0 + timedelta(seconds=10), timeout=30)["stale"] is False
    shown = leadership(T0 + timedelta(seconds=31), timeout=30)
    assert shown["holder"] == "host-a:1" and shown["stale"] is True
