"""Health checks for load balancers and orchestrators: liveness (/healthz) and readiness (/readyz).

No authentication, no session, no rate limit: a load balancer polls them every few seconds from its own
addresses. The answers name no host, user or error text from the driver (it may hold the database URL)."""
from __future__ import annotations

import functools
import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import csrf, db, limiter

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

#: Readiness must answer before the load balancer's own timeout, even when PostgreSQL hangs.
READY_STATEMENT_TIMEOUT_MS = 2000


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@functools.cache
def migration_head() -> str:
    """The head revision of migrations/ (one head: the project keeps a linear history)."""
    from alembic.script import ScriptDirectory

    from . import ROOT

    heads = ScriptDirectory(str(ROOT / "migrations")).get_heads()
    return heads[0] if len(heads) == 1 else ",".join(sorted(heads))


@bp.get("/healthz")
@limiter.exempt
@csrf.exempt
def healthz():
    """Liveness: the process answers requests. Never touches the database (a database outage must not get
    every web process restarted)."""
    return _no_store(jsonify(status="ok"))


def _unavailable(reason: str):
    return _no_store(jsonify(status="unavailable", reason=reason)), 503


@bp.get("/readyz")
@limiter.exempt
@csrf.exempt
def readyz():
    """Readiness: the database answers and its schema is at the head of migrations/ (``flask db upgrade`` ran)."""
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text(f"SET LOCAL statement_timeout = {READY_STATEMENT_TIMEOUT_MS}"))
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return _unavailable("database unreachable")
    try:
        current = sorted(db.session.scalars(text("SELECT version_num FROM alembic_version")))
    except SQLAlchemyError:
        db.session.rollback()
        return _unavailable("schema not migrated")
    db.session.rollback()  # nothing written; ends SET LOCAL
    if ",".join(current) != migration_head():
        return _unavailable("schema not at the migration head")
    return _no_store(jsonify(status="ready"))
