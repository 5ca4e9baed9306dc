"""The session that reports and exports read through: a read-only one on REPORTS_DATABASE_URL (a streaming
replica of the main database) when it is set, else the app's own ``db.session``.

Only reads go there: the staff report pages, the exports (CLI, export jobs, the monthly report's attachment)
and the scheduled reports' figures. Everything that writes stays on the primary, through ``db.session``:
export job rows, the audit log, the outbox, and the annual statements (a statement's number and its gifts are
read and written in one transaction, so they are never taken from a replica that may lag behind).
"""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db


def init_app(app: Flask) -> None:
    if not app.config.get("REPORTS_DATABASE_URL"):
        return
    with app.app_context():
        engine = db.engines["reports"]

    @event.listens_for(engine, "connect")
    def read_only(dbapi_connection, _record):
        # A replica refuses writes by itself; this keeps a mistaken write off a primary named here as well.
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        elif engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        cursor.close()
        if engine.dialect.name == "postgresql":
            dbapi_connection.commit()

    @app.teardown_appcontext
    def close_reports_session(_exc):
        session = g.pop("_reports_session", None)
        if session is not None:
            session.close()


def reads() -> Session:
    """The session for report and export queries in this app context."""
    if not current_app.config.get("REPORTS_DATABASE_URL"):
        return db.session
    session = g.get("_reports_session")
    if session is None:
        session = g._reports_session = Session(bind=db.engines["reports"], autoflush=False)
    return session
