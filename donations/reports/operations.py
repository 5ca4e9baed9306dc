"""Exports asked for on /staff/reports: checking the request, and the background jobs the scheduler runs."""
from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import date, timedelta
import itertools
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from ..db import now_utc
from ..extensions import db
from ..staff.auth import audit
from ..staff.models import StaffUser
from .models import ExportChunk, ExportJob, ExportStatus
from .registry import ExportKind, ExportParamError, ExportParams, kinds, make_params, write_csv, write_xlsx

log = logging.getLogger(__name__)

FORMATS = ("csv", "xlsx")
#: How often a running job writes its rows_done: often enough for a moving bar, rarely enough to cost nothing.
PROGRESS_EVERY = 2000


def parse_export_request(kind_name: str | None, start: str | None, end: str | None, fiscal_year: str | None,
                         payout_id: str | None, fmt: str | None) -> tuple[ExportKind, ExportParams, str]:
    """The kind, range and format of an export asked for in a form or a link; ExportParamError names the
    field at fault, with a message for the page."""
    kind = kinds().get(kind_name or "donations")
    if kind is None:
        raise ExportParamError("kind", "Choose one of the exports listed.")
    if fmt not in FORMATS:
        raise ExportParamError("format", "Choose CSV or XLSX.")

    def day(text: str | None, field: str) -> date | None:
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ExportParamError(field, "Choose a first and a last day.") from None

    year = None
    if fiscal_year:
        if not (fiscal_year.isascii() and fiscal_year.isdigit() and 2000 <= int(fiscal_year) <= 2100):
            raise ExportParamError("fiscal-year", "A fiscal year is a year such as 2026.")
        year = int(fiscal_year)
    try:
        params = make_params(kind, start=day(start, "from"), end=day(end, "to"), fiscal_year=year,
                             payout_id=(payout_id or "").strip() or None,
                             fiscal_start_month=current_app.config["FISCAL_YEAR_START_MONTH"])
    except ExportParamError as exc:
        if exc.missing:
            raise ExportParamError(exc.field, "Choose a first and a last day"
                                   + (", a fiscal year or a payout." if kind.by_payout else " or a fiscal year."))
        raise ExportParamError(exc.field, str(exc)[:1].upper() + str(exc)[1:] + ".") from None
    return kind, params, fmt


def request_export(user: StaffUser, kind: ExportKind, params: ExportParams, fmt: str, bom: bool) -> ExportJob:
    """Queue an export for the scheduler (``reports.exports``); audited. The caller commits."""
    job = ExportJob(requested_by_id=user.id, kind=kind.name, params=params.to_json(), format=fmt,
                    bom=bom and fmt == "csv", status=ExportStatus.QUEUED)
    db.session.add(job)
    db.session.flush()
    audit("export.request", "export_job", job.id, actor=user, kind=kind.name, format=fmt,
          **{key: value for key, value in params.to_json().items() if value})
    return job


def claim_next() -> int | None:
    """Take the oldest queued job for this process, or None. The claim is one UPDATE … WHERE status='queued'
    RETURNING, committed at once: two schedulers that pick the same job both try, and only one gets a row."""
    candidates = db.session.scalars(select(ExportJob.id).where(ExportJob.status == ExportStatus.QUEUED)
                                    .order_by(ExportJob.id).limit(10)).all()
    db.session.commit()
    for job_id in candidates:
        claimed = db.session.execute(
            update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == ExportStatus.QUEUED)
            .values(status=ExportStatus.RUNNING, started_at=now_utc())
            .returning(ExportJob.id).execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        db.session.commit()
        if claimed is not None:
            return claimed
    return None


def _record(job_id: int, **values) -> None:
    """Write a job's progress at once, in a session of its own: the export's own session is in the middle of
    a streamed query, which a commit would end."""
    with Session(bind=db.engine, join_transaction_mode="create_savepoint") as session:
        session.execute(update(ExportJob).where(ExportJob.id == job_id).values(**values)
                        .execution_options(synchronize_session=False))
        session.commit()


def export_dir() -> Path:
    """Scratch space where a running job writes its file before storing it in the database."""
    path = Path(current_app.config["EXPORT_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


#: Bytes per row of export_chunks: big enough that a 150 MB file is 150 statements, small enough to hold.
CHUNK_BYTES = 1024 * 1024


def run_export(job_id: int) -> bool:
    """Write a claimed job's file, keeping rows_done current, and store it in the database (export_chunks),
    which every web host shares; mark it done, or failed with the reason (a failure is recorded for the staff
    to see, never raised). The chunks and the "done" are committed together: a file is complete or absent."""
    job = db.session.get(ExportJob, job_id)
    kind = kinds().get(job.kind)
    partial = export_dir() / f"{job.id}-{secrets.token_hex(8)}-{job.file_name}.part"
    fmt, bom, params = job.format, job.bom, ExportParams.from_json(job.params)
    db.session.commit()
    try:
        if kind is None:
            raise LookupError(f"there is no {job.kind} export (any more)")
        total = kind.count(params)
        _record(job_id, rows_total=total)

        def progress(done: int) -> None:
            _record(job_id, rows_done=done)

        if fmt == "xlsx":
            count = write_xlsx(kind, str(partial), params, progress, every=PROGRESS_EVERY)
        else:
            with open(partial, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as out:
                count = write_csv(kind, out, params, progress, every=PROGRESS_EVERY)
        # End the read transaction before writing: on SQLite a reader whose snapshot is older than the
        # progress writes cannot become a writer.
        db.session.rollback()
        size = _store(job_id, partial)
        # rows_total is taken before the writing starts; what was written is the truth.
        _finish(job_id, status=ExportStatus.DONE, rows_done=count, rows_total=count, size_bytes=size)
    except Exception as exc:
        db.session.rollback()
        log.exception("export job %s failed", job_id)
        _finish(job_id, status=ExportStatus.FAILED, error=(str(exc) or type(exc).__name__)[:500])
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def _store(job_id: int, path: Path) -> int:
    """Copy the file into export_chunks, a chunk at a time (flushed, not committed); its size in bytes."""
    size = 0
    with open(path, "rb") as file:
        for seq, data in enumerate(iter(lambda: file.read(CHUNK_BYTES), b"")):
            db.session.execute(insert(ExportChunk).values(job_id=job_id, seq=seq, data=data))
            size += len(data)
    return size


def file_chunks(job_id: int) -> Iterator[bytes]:
    """A stored export file's bytes, a chunk (one query) at a time, for a streamed download."""
    for seq in itertools.count():
        data = db.session.scalar(select(ExportChunk.data).where(ExportChunk.job_id == job_id,
                                                                ExportChunk.seq == seq))
        if data is None:
            return
        yield bytes(data)


def _finish(job_id: int, **values) -> None:
    db.session.execute(update(ExportJob).where(ExportJob.id == job_id).values(finished_at=now_utc(), **values)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def delete_expired_files() -> int:
    """Delete export files older than EXPORT_KEEP_HOURS (they hold personal data), and fail jobs whose run was
    interrupted (a scheduler stopped mid-way) that long ago. Returns how many files were deleted."""
    cutoff = now_utc() - timedelta(hours=current_app.config["EXPORT_KEEP_HOURS"])
    deleted = 0
    expired = select(ExportJob).where(or_(ExportJob.size_bytes.is_not(None), ExportJob.file_path.is_not(None)),
                                      ExportJob.finished_at < cutoff)
    for job in db.session.scalars(expired):
        if job.file_path:  # written before the files moved into the database, on this host or another
            try:
                Path(job.file_path).unlink(missing_ok=True)
            except OSError as exc:  # one file we may not delete must not keep the others (or the exports) waiting
                log.error("export file %s of job %s not deleted: %s", job.file_path, job.id, exc)
                continue
        db.session.execute(delete(ExportChunk).where(ExportChunk.job_id == job.id))
        job.file_path, job.size_bytes, job.deleted_at = None, None, now_utc()
        deleted += 1
    db.session.execute(
        update(ExportJob).where(ExportJob.status == ExportStatus.RUNNING, ExportJob.started_at < cutoff)
        .values(status=ExportStatus.FAILED, error="The export was interrupted. Please ask for it again.",
                finished_at=now_utc()).execution_options(synchronize_session=False))
    for leftover in export_dir().glob("*.part"):
        try:
            if leftover.stat().st_mtime < cutoff.timestamp():
                leftover.unlink(missing_ok=True)
        except OSError as exc:
            log.error("partial export %s not deleted: %s", leftover, exc)
    db.session.commit()
    return deleted


def downloadable(job: ExportJob) -> bool:
    """Done, and its file not deleted yet."""
    return job.status is ExportStatus.DONE and (job.size_bytes is not None or bool(job.file_path))


def job_state(job: ExportJob, download_url: str | None) -> dict:
    """What the job page and its status endpoint show."""
    return {"id": job.id, "status": job.status.value, "rows_done": job.rows_done, "rows_total": job.rows_total,
            "error": job.error, "file_name": job.file_name,
            "download_url": download_url if downloadable(job) else None,
            "deleted": job.deleted_at is not None}


def export_attachment(export: str, start: str, end: str) -> tuple[str, str, bytes]:
    """An export of a period as a CSV file for an email (the monthly report's ledger), built when the email
    is sent; a closed period keeps it the same however late that is."""
    import io

    kind = kinds()[export]
    params = ExportParams(start=date.fromisoformat(start), end=date.fromisoformat(end))
    out = io.StringIO(newline="")
    write_csv(kind, out, params)
    return f"{export}-{start}-{end}.csv", "text/csv", out.getvalue().encode("utf-8")


def register_attachments() -> None:
    """Called by the app factory: emails can carry exports from then on."""
    from ..mail import attachments

    attachments.register("export_csv", export_attachment)
