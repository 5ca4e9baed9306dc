"""Declarative base with a naming convention, UTC helpers, and SQLite hygiene."""
from __future__ import annotations

import enum
import logging
import sqlite3
from datetime import datetime, timezone

from sqlalchemy import DateTime, Enum, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, registry, scoped_session
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger(__name__)

#: SQLSTATEs of a PostgreSQL that is away: the connection failed or broke (class 08), the server is shutting
#: down, crashed or is starting (57P01-57P03), or it has no connection slot left (53300).
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
#: SQLite's words for a database file it cannot use just now.
SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk I/O error")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database being away rather than from our code or our data.

    It looks along the exception's causes too: a lost connection often surfaces as another error raised while
    SQLAlchemy cleans up (a savepoint it cannot release, a rollback on a dead connection). A statement the
    server cancelled or refused (a timeout, a limit, a missing table) is not "away": retrying would not help,
    and it stays a 500 with its traceback."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (DisconnectionError, PoolTimeout)):
            return True
        if isinstance(exc, DBAPIError) and (exc.connection_invalidated or (
                isinstance(exc, (OperationalError, InterfaceError)) and _driver_says_away(exc.orig))):
            return True
        exc, seen = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__), seen + 1
    return False


def _driver_says_away(error: BaseException) -> bool:
    if isinstance(error, sqlite3.Error):
        return any(words in str(error) for words in SQLITE_UNAVAILABLE)
    sqlstate = getattr(error, "sqlstate", None)  # psycopg's; None when no server answered at all
    return sqlstate is None or sqlstate.startswith(UNAVAILABLE_SQLSTATES)


def short_reason(exc: BaseException) -> str:
    """The first line of a database error (the driver's own when there is one), never its SQL or parameters."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def discard_transaction(session) -> None:
    """Roll the session back after a failure; when even that fails (the connection is gone), drop the session's
    connections, so the pool replaces them and the next request starts clean."""
    if isinstance(session, scoped_session):
        session = session()
    try:
        session.rollback()
    except Exception as exc:  # noqa: BLE001 - the request is already failing; the answer must still go out
        log.warning("rollback failed, the session's connections are discarded: %s", short_reason(exc))
        try:
            session.invalidate()
        except Exception:  # noqa: BLE001
            log.warning("the session could not be invalidated either", exc_info=True)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def enum_column(enum_cls: type[enum.Enum], name: str) -> Enum:
    """Enums stored by value, as VARCHAR with a CHECK, so adding a member is a small migration."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    # The map sits on the registry: Flask-SQLAlchemy subclasses this base, and SQLAlchemy 2.1
    # refuses a class-level type_annotation_map on a subclass of a base that has a registry.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, connection_record):
    # pysqlite's own transaction handling breaks SAVEPOINT and starts transactions late;
    # let SQLAlchemy emit BEGIN itself (see SQLAlchemy's "Serializable isolation / Savepoints" notes for SQLite).
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    # Not on a connection in autocommit mode (the outbox sender's outcomes): there each statement stands alone,
    # and a BEGIN would open a transaction that nothing commits.
    if conn.dialect.name == "sqlite" and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.exec_driver_sql("BEGIN")


def insert_ignore(session, model, values: dict, conflict: list[str]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on the conflict columns, on PostgreSQL and SQLite alike.

    For rows that concurrent requests may both create (a supporter, a counter, an email):
    the loser neither fails nor overwrites, and reads the winner's row afterwards.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict))


def next_number(session, model, key: str, value: int) -> int:
    """Take the next number of a gap-free counter: ``model``'s row where ``key`` is ``value``, with its
    ``last_number``. The row stays locked until the transaction ends and rolls back with it (a savepoint
    too), so numbers are unique and without gaps however many transactions race for them."""
    # One statement, not INSERT … DO NOTHING then UPDATE: under contention (a renewal day's receipts) each
    # waiter then waits for the row's lock once rather than twice, and makes one round trip less.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    upsert = insert(model).values({key: value, "last_number": 1})
    return session.execute(
        upsert.on_conflict_do_update(index_elements=[key], set_={"last_number": model.last_number + 1})
        .returning(model.last_number)
    ).scalar_one()
