"""One active scheduler however many run: the others wait as standbys and take over when it dies.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its own, held for
the process's life and never taken from the pool that jobs use. The lock dies with that connection, so
a leader killed with ``kill -9`` frees it at once; a leader whose connection is lost (a database
restart) stops its jobs and goes back to standby, since after the restart another process may hold it.

SQLite: a lock row holding the leader's ``host:pid`` and a heartbeat it renews; a standby takes over once
the heartbeat is older than SCHEDULER_LEADER_TIMEOUT_SECONDS, by one conditional UPDATE that only one
process can win.

On both, the row ``scheduler_lock`` says who leads, since when, and which standby last looked, for
/staff/jobs (on PostgreSQL it only informs; the advisory lock decides).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import String, case, create_engine, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import NullPool

from .db import now_utc
from .extensions import db
from .job_runs import own_session

log = logging.getLogger("donations.scheduler")

LOCK_NAME = "scheduler"
#: The advisory lock's key, the same for every scheduler of a database (advisory locks are per database,
#: so two apps on one server do not meet). "dons" in ASCII.
ADVISORY_KEY = 0x646F6E73

Clock = Callable[[], datetime]


class SchedulerLock(db.Model):
    """Who leads the schedulers. On SQLite this row is the lock; on PostgreSQL it only tells the staff."""

    __tablename__ = "scheduler_lock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: ``host:pid`` of the leader; None when no scheduler leads (the last one stopped cleanly).
    holder: Mapped[str | None] = mapped_column(String(255))
    acquired_at: Mapped[datetime | None]
    #: Renewed by the leader every SCHEDULER_HEARTBEAT_SECONDS.
    heartbeat_at: Mapped[datetime | None]
    #: The standby that last looked for the lock, and when.
    standby: Mapped[str | None] = mapped_column(String(255))
    standby_seen_at: Mapped[datetime | None]


def _insert_row(conn) -> None:
    """The lock row, once (INSERT … ON CONFLICT DO NOTHING)."""
    dialect = conn.get_bind().dialect if hasattr(conn, "get_bind") else conn.dialect  # a Session or a Connection
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(SchedulerLock).values(name=LOCK_NAME).on_conflict_do_nothing(index_elements=["name"]))


def current_holder(conn) -> str | None:
    return conn.execute(select(SchedulerLock.holder).where(SchedulerLock.name == LOCK_NAME)).scalar_one_or_none()


def _standby_cleared(me: str):
    """The standby column, emptied when the new leader was that standby."""
    return case((SchedulerLock.standby == me, None), else_=SchedulerLock.standby)


class SQLiteLease:
    """The lock row as the lock: taken when free or stale, renewed by the leader, released on a clean stop."""

    def __init__(self, me: str, timeout: float, clock: Clock = now_utc):
        self.me, self.timeout, self.clock = me, timedelta(seconds=timeout), clock
        self.previous: str | None = None

    def acquire(self) -> bool:
        """Take the lock if it is free, ours, or its heartbeat older than the timeout: one UPDATE, so
        of two standbys looking at once only one gets a row."""
        now = self.clock()
        try:
            with own_session() as session:
                _insert_row(session)
                self.previous = current_holder(session)
            with own_session() as session:
                won = session.execute(
                    update(SchedulerLock)
                    .where(SchedulerLock.name == LOCK_NAME,
                           or_(SchedulerLock.holder.is_(None), SchedulerLock.holder == self.me,
                               SchedulerLock.heartbeat_at < now - self.timeout))
                    .values(holder=self.me, acquired_at=now, heartbeat_at=now, standby=_standby_cleared(self.me))
                ).rowcount == 1
        except SQLAlchemyError as exc:
            log.warning("could not look at the scheduler lock: %s", exc)
            return False
        return won

    def renew(self) -> bool:
        """Renew the heartbeat; False when the row names another leader (ours went stale) or the
        database cannot be reached, and the caller must stop its jobs."""
        try:
            with own_session() as session:
                return session.execute(
                    update(SchedulerLock).where(SchedulerLock.name == LOCK_NAME, SchedulerLock.holder == self.me)
                    .values(heartbeat_at=self.clock())
                ).rowcount == 1
        except SQLAlchemyError as exc:
            log.warning("could not renew the scheduler lock: %s", exc)
            return False

    def note_standby(self) -> None:
        try:
            with own_session() as session:
                session.execute(update(SchedulerLock).where(SchedulerLock.name == LOCK_NAME)
                                .values(standby=self.me, standby_seen_at=self.clock()))
        except SQLAlchemyError as exc:
            log.warning("could not note this standby: %s", exc)

    def release(self) -> None:
        """Free the lock at once on a clean stop, so that a standby need not wait for the timeout."""
        try:
            with own_session() as session:
                session.execute(update(SchedulerLock)
                                .where(SchedulerLock.name == LOCK_NAME, SchedulerLock.holder == self.me)
                                .values(holder=None, heartbeat_at=None))
        except SQLAlchemyError as exc:
            log.warning("could not release the scheduler lock: %s", exc)


class PostgresLease:
    """A session-level advisory lock on a dedicated connection (autocommit, so never idle in a
    transaction), with TCP keepalives and timeouts so that a vanished server is noticed."""

    def __init__(self, url: str, me: str, clock: Clock = now_utc):
        self.me, self.clock = me, clock
        self.previous: str | None = None
        self.conn: Connection | None = None
        self.engine: Engine = create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
            connect_args={"application_name": f"donations-scheduler {me}"[:63], "connect_timeout": 10,
                          "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                          "tcp_user_timeout": 20000,
                          # The server's side too: a leader's machine that vanishes without closing its socket
                          # would otherwise hold the lock for the OS default of two hours.
                          "options": "-c statement_timeout=10000 -c tcp_keepalives_idle=10"
                                     " -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"})

    @property
    def backend_pid(self) -> int | None:
        """The lock connection's server process (tests end it with pg_terminate_backend)."""
        return self.conn.execute(text("SELECT pg_backend_pid()")).scalar_one() if self.conn else None

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.invalidate()
                self.conn.close()
            except SQLAlchemyError:
                pass
        self.conn = None

    def acquire(self) -> bool:
        """Try the advisory lock without waiting; on success write this process into the lock row."""
        try:
            if self.conn is None:
                self.conn = self.engine.connect()
            if not self.conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar_one():
                return False
            _insert_row(self.conn)
            self.previous = current_holder(self.conn)
            now = self.clock()
            self.conn.execute(update(SchedulerLock).where(SchedulerLock.name == LOCK_NAME)
                              .values(holder=self.me, acquired_at=now, heartbeat_at=now,
                                      standby=_standby_cleared(self.me)))
        except SQLAlchemyError as exc:
            log.warning("could not look at the scheduler lock: %s", exc)
            self._drop()
            return False
        return True

    def renew(self) -> bool:
        """True while the lock connection is alive and still holds the lock (asked of pg_locks, not assumed)."""
        if self.conn is None:
            return False
        try:
            held = self.conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid::bigint = :high AND objid::bigint = :low"
                " AND objsubid = 1)"), {"high": ADVISORY_KEY >> 32, "low": ADVISORY_KEY & 0xFFFFFFFF}).scalar_one()
            if held:
                self.conn.execute(update(SchedulerLock).where(SchedulerLock.name == LOCK_NAME)
                                  .values(heartbeat_at=self.clock()))
        except SQLAlchemyError as exc:
            log.warning("the scheduler lock's connection failed: %s", exc)
            self._drop()
            return False
        return bool(held)

    def note_standby(self) -> None:
        if self.conn is None:
            return
        try:
            _insert_row(self.conn)
            self.conn.execute(update(SchedulerLock).where(SchedulerLock.name == LOCK_NAME)
                              .values(standby=self.me, standby_seen_at=self.clock()))
        except SQLAlchemyError as exc:
            log.warning("could not note this standby: %s", exc)
            self._drop()

    def release(self) -> None:
        """Say so in the row and close the connection, which frees the advisory lock."""
        if self.conn is not None:
            try:
                self.conn.execute(update(SchedulerLock)
                                  .where(SchedulerLock.name == LOCK_NAME, SchedulerLock.holder == self.me)
                                  .values(holder=None, heartbeat_at=None))
                self.conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except SQLAlchemyError:
                pass
        self._drop()
        self.engine.dispose()


def make_lease(app, me: str, clock: Clock = now_utc) -> SQLiteLease | PostgresLease:
    """The lease for the app's database."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("postgresql"):
        return PostgresLease(url, me, clock)
    return SQLiteLease(me, app.config["SCHEDULER_LEADER_TIMEOUT_SECONDS"], clock)


def leadership(now: datetime | None = None, timeout: float = 30) -> dict:
    """What /staff/jobs shows: the leader, since when, its last heartbeat (and whether that is overdue),
    and the standby that last looked."""
    row = db.session.get(SchedulerLock, LOCK_NAME)
    now = now or now_utc()
    if row is None:
        return {"holder": None, "acquired_at": None, "heartbeat_at": None, "stale": False, "standby": None,
                "standby_seen_at": None}
    stale = row.holder is not None and (row.heartbeat_at is None
                                        or row.heartbeat_at < now - timedelta(seconds=timeout))
    return {"holder": row.holder, "acquired_at": row.acquired_at, "heartbeat_at": row.heartbeat_at,
            "stale": stale, "standby": row.standby, "standby_seen_at": row.standby_seen_at}
