"""Which database errors mean "the database is away" (503, Retry-After, come back) and which are a statement
the server refused (500 with its traceback: retrying would get the same answer)."""
from __future__ import annotations

import sqlite3

import psycopg.errors as pg
import pytest
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from donations.db import database_unavailable


def wrapped(error: Exception, kind=OperationalError, invalidated: bool = False):
    return kind("SELECT 1", {}, error, connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    wrapped(pg.AdminShutdown("terminating connection due to administrator command")),
    wrapped(pg.CrashShutdown("terminating connection because of crash of another server process")),
    wrapped(pg.CannotConnectNow("the database system is starting up")),
    wrapped(pg.TooManyConnections("sorry, too many clients already")),
    wrapped(pg.ConnectionFailure("connection failure")),
    wrapped(pg.OperationalError("connection failed: Connection refused")),  # no server answered: no SQLSTATE
    wrapped(pg.InterfaceError("the connection is closed"), InterfaceError),
    wrapped(pg.QueryCanceled("canceling statement"), invalidated=True),  # SQLAlchemy saw the connection go
    wrapped(sqlite3.OperationalError("database is locked")),
    DisconnectionError("pre-ping failed"),
    PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
], ids=lambda e: str(getattr(e, "orig", e))[:40])
def test_the_database_away_is_unavailable(error):
    assert database_unavailable(error)


@pytest.mark.parametrize("error", [
    wrapped(pg.QueryCanceled("canceling statement due to statement timeout")),
    wrapped(pg.ProgramLimitExceeded("index row size exceeds maximum")),
    wrapped(pg.DiskFull("could not extend file")),
    wrapped(sqlite3.OperationalError("no such table: campaigns")),
    wrapped(pg.UniqueViolation("duplicate key"), IntegrityError),
    wrapped(pg.UndefinedColumn("column does not exist"), ProgrammingError),
    RuntimeError("a bug"),
], ids=lambda e: str(getattr(e, "orig", e))[:40])
def test_a_refused_statement_or_a_bug_is_not(error):
    assert not database_unavailable(error)


def test_an_error_raised_while_a_lost_connection_was_handled_counts_as_away():
    lost = wrapped(pg.AdminShutdown("terminating connection"))
    try:
        try:
            raise lost
        except OperationalError:
            raise RuntimeError("cannot release savepoint")  # noqa: B904 - its context is the lost connection
    except RuntimeError as error:
        assert database_unavailable(error)


def test_an_error_raised_from_none_does_not_inherit_the_context():
    try:
        try:
            raise wrapped(pg.AdminShutdown("terminating connection"))
        except OperationalError:
            raise RuntimeError("replaced on purpose") from None
    except RuntimeError as error:
        assert not database_unavailable(error)
