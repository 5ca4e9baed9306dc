"""The record of every run of every scheduled job: what /staff/jobs shows."""
from __future__ import annotations

import enum
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator

from flask import current_app
from sqlalchemy import JSON, Index, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import enum_column, now_utc
from .extensions import db


class RunOutcome(enum.StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class JobRun(db.Model):
    """One run of one scheduled job, written by ``scheduler.run_job`` in transactions of its own."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_id_started_at", "job_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The scheduler's job id, such as ``outbox.send``.
    job_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=now_utc, index=True)
    #: None while the job runs, and for ever if its process died during the run.
    finished_at: Mapped[datetime | None]
    outcome: Mapped[RunOutcome] = mapped_column(enum_column(RunOutcome, "job_run_outcome"),
                                                default=RunOutcome.RUNNING)
    #: What the job returned, such as ``{"sent": 3, "retry": 0, "failed": 0}``.
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The exception's type and first line (never its SQL parameters, which may hold personal data).
    error: Mapped[str | None] = mapped_column(Text)
    #: ``host:pid`` of the scheduler process that ran it.
    process: Mapped[str] = mapped_column(String(255))

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None


def this_process() -> str:
    """``host:pid``: names a scheduler process in the lock row and in job runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def own_session() -> Iterator[Session]:
    """A short session of its own, committed on leaving: the job's session may be anywhere in its work.

    (``create_savepoint`` so that in tests, where the engine is a connection inside the test's
    transaction, it nests instead of committing that transaction.)
    """
    with Session(bind=db.engine, join_transaction_mode="create_savepoint") as session:
        yield session
        session.commit()


def short_error(exc: BaseException) -> str:
    """``TypeName: first line``, at most 500 characters; SQLAlchemy's later lines carry SQL and parameters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")[:500]


def record_start(job_id: str) -> int:
    """Write a run as running, committed at once; returns its id."""
    with own_session() as session:
        run = JobRun(job_id=job_id, started_at=now_utc(), outcome=RunOutcome.RUNNING, process=this_process())
        session.add(run)
        session.flush()
        return run.id


def record_finish(run_id: int, outcome: RunOutcome, counts: dict | None = None, error: str | None = None) -> None:
    """Write how a run ended, committed at once."""
    with own_session() as session:
        session.execute(update(JobRun).where(JobRun.id == run_id)
                        .values(finished_at=now_utc(), outcome=outcome, counts=counts, error=error))


def close_orphans(me: str) -> int:
    """A scheduler that just became leader closes the runs other processes left running: no other
    scheduler runs jobs now, so those processes died (or lost the lock) mid-run. Returns how many."""
    with own_session() as session:
        return session.execute(
            update(JobRun).where(JobRun.outcome == RunOutcome.RUNNING, JobRun.process != me)
            .values(finished_at=now_utc(), outcome=RunOutcome.FAILED,
                    error="the scheduler running it stopped before the run ended")).rowcount


def prune_runs(now: datetime | None = None) -> dict[str, int]:
    """Delete job runs older than JOB_RUNS_KEEP_DAYS, so that the record never grows without bound.

    By age rather than a number per job: a week-old failure of the five-second outbox job stays visible
    as long as one of the daily statements job. Runs hourly, so each deletion is small.
    """
    cutoff = (now or now_utc()) - timedelta(days=current_app.config["JOB_RUNS_KEEP_DAYS"])
    deleted = db.session.execute(delete(JobRun).where(JobRun.started_at < cutoff)).rowcount
    db.session.commit()
    return {"deleted": deleted}


def recent_runs(job_id: str, limit: int = 10) -> list[JobRun]:
    """The job's latest runs, newest first."""
    return list(db.session.scalars(select(JobRun).where(JobRun.job_id == job_id)
                                   .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)))


def last_failure(job_id: str) -> JobRun | None:
    """The job's latest failed run, however far back (within JOB_RUNS_KEEP_DAYS)."""
    return db.session.scalars(select(JobRun).where(JobRun.job_id == job_id, JobRun.outcome == RunOutcome.FAILED)
                              .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
