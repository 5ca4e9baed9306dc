"""Background exports: /staff/reports queues a large export, the scheduler's job claims it once, writes it with
progress, and the accountant watches it and downloads it; failures are shown, old files deleted."""
from __future__ import annotations

import csv
import dataclasses
import io
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from donations.extensions import db
from donations.reports import operations as export_ops
from donations.reports import registry
from donations.reports.models import ExportChunk, ExportJob, ExportStatus
from donations.reports.jobs import run_exports
from donations.reports.operations import claim_next
from donations.reports.registry import ExportParams
from donations.staff.auth import create_user
from donations.staff.models import AuditEntry, Role, StaffUser
from tests.conftest import run_threads
from tests.dates import recent_days
from tests.staff_helpers import active_content, audit_rows, count, in_app, signed_in, webhook_gift



def form(**fields) -> dict:
    """The report form for yesterday and today (UTC), read when it is sent: it holds the gifts the test made a
    moment before, even when midnight passed in between."""
    start, end = recent_days()
    return {"kind": "donations", "start": start, "end": end, "format": "csv", **fields}


@pytest.fixture
def background(app, monkeypatch):
    """Every export from the form goes to the background, however small (even one without rows)."""
    monkeypatch.setitem(app.config, "EXPORT_DIRECT_MAX_ROWS", -1)


def queue(staff, data: dict | None = None, **fields) -> int:
    response = staff.post("/staff/reports", data or form(**fields))
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/staff/reports/jobs/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def job_row(app, job_id: int) -> dict:
    with in_app(app):
        job = db.session.get(ExportJob, job_id)
        return {"status": job.status, "rows_done": job.rows_done, "rows_total": job.rows_total,
                "file_path": job.file_path, "size_bytes": job.size_bytes, "error": job.error}


def chunk_count(app, job_id: int) -> int:
    with in_app(app):
        return db.session.scalar(select(func.count()).select_from(ExportChunk).where(ExportChunk.job_id == job_id))


def run_scheduler_job(app) -> dict:
    with in_app(app):
        return run_exports()


def test_a_large_export_is_queued_audited_and_shown_with_a_progress_bar(app, client, background):
    webhook_gift(client)
    staff = signed_in(client, Role.ACCOUNTANT)

    sent = form()
    job_id = queue(staff, sent)
    start, end = sent["start"], sent["end"]

    assert job_row(app, job_id)["status"] is ExportStatus.QUEUED
    [entry] = audit_rows(app, AuditEntry.action == "export.request")
    assert (entry["actor_id"], entry["object_id"]) == (staff.id, str(job_id))
    assert entry["detail"] == {"kind": "donations", "format": "csv", "start": start, "end": end}
    html = staff.get(f"/staff/reports/jobs/{job_id}").get_data(as_text=True)
    assert '<progress id="export-progress"' in html and "queued" in html
    page = active_content(html)
    assert page.scripts == [""] and not page.handlers  # one external script, nothing inline
    assert 'src="/static/staff/export-progress.js"' in html
    with client.get("/static/staff/export-progress.js") as script:
        assert script.status_code == 200 and b"export-progress" in script.data
    assert staff.get(f"/staff/reports/jobs/{job_id}/status").get_json() == {
        "id": job_id, "status": "queued", "rows_done": 0, "rows_total": None, "error": None,
        "file_name": f"donations-{start}-{end}.csv", "download_url": None, "deleted": False}


def test_the_job_runs_from_queued_through_running_to_done_and_downloads(app, client, background, monkeypatch):
    for amount in (1000, 2000, 3000):
        webhook_gift(client, amount=amount)
    staff = signed_in(client, Role.ACCOUNTANT)
    sent = form()
    job_id = queue(staff, sent)
    seen: list[tuple] = []
    record = export_ops._record

    def watching(job, **values):  # what the job page would read between two progress writes
        record(job, **values)
        with Session(bind=db.engine) as other:
            row = other.get(ExportJob, job)
            seen.append((row.status.value, row.rows_done, row.rows_total))

    monkeypatch.setattr(export_ops, "_record", watching)
    monkeypatch.setattr(export_ops, "PROGRESS_EVERY", 1)

    assert run_scheduler_job(app) == {"deleted": 0, "done": 1, "failed": 0}

    assert seen == [("running", 0, 3), ("running", 1, 3), ("running", 2, 3), ("running", 3, 3)]
    row = job_row(app, job_id)
    assert (row["status"], row["rows_done"], row["rows_total"]) == (ExportStatus.DONE, 3, 3)
    state = staff.get(f"/staff/reports/jobs/{job_id}/status").get_json()
    assert state["download_url"] == f"/staff/reports/jobs/{job_id}/download"
    assert 'value="3"' in staff.get(f"/staff/reports/jobs/{job_id}").get_data(as_text=True)
    response = staff.get(state["download_url"])
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f"attachment; filename=donations-{sent['start']}-{sent['end']}.csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    response.close()
    assert sorted(r["amount"] for r in rows) == ["10.00", "20.00", "30.00"]
    assert [a["object_id"] for a in audit_rows(app, AuditEntry.action == "export.download")] == [str(job_id)]
    assert run_scheduler_job(app) == {"deleted": 0, "done": 0, "failed": 0}  # never run twice


def test_an_xlsx_job_writes_a_workbook(app, client, background, tmp_path):
    webhook_gift(client)
    staff = signed_in(client, Role.ADMIN)
    job_id = queue(staff, format="xlsx")

    run_scheduler_job(app)

    path = tmp_path / "d.xlsx"
    with staff.get(f"/staff/reports/jobs/{job_id}/download") as response:
        path.write_bytes(response.data)
    assert load_workbook(path).sheetnames == ["EUR"]


def test_a_failing_writer_marks_the_job_failed_and_shows_why(app, client, background, monkeypatch):
    webhook_gift(client)
    webhook_gift(client, amount=1000)
    staff = signed_in(client, Role.ACCOUNTANT)
    job_id = queue(staff)
    donations = registry.kinds()["donations"]

    def breaking(params):
        rows = donations.rows(params)
        yield next(rows)
        raise RuntimeError("the database went away")

    def breaking_lines(params):  # PostgreSQL writes the CSV from SQL lines: those break the same way
        lines = donations.csv_lines(params)
        yield next(lines)
        raise RuntimeError("the database went away")

    monkeypatch.setitem(registry.KINDS, "donations",
                        dataclasses.replace(donations, rows=breaking, csv_lines=breaking_lines))
    files_before = set(Path(app.config["EXPORT_DIR"]).glob("*"))

    assert run_scheduler_job(app) == {"deleted": 0, "done": 0, "failed": 1}

    row = job_row(app, job_id)
    assert (row["status"], row["error"], row["size_bytes"]) == (ExportStatus.FAILED, "the database went away", None)
    assert set(Path(app.config["EXPORT_DIR"]).glob("*")) == files_before  # no partial file left behind
    assert chunk_count(app, job_id) == 0
    page = staff.get(f"/staff/reports/jobs/{job_id}")
    assert page.status_code == 200
    assert "The export failed: the database went away" in page.get_data(as_text=True)
    assert staff.get(f"/staff/reports/jobs/{job_id}/status").get_json()["status"] == "failed"
    assert staff.get(f"/staff/reports/jobs/{job_id}/download").status_code == 404
    assert "failed" in staff.get("/staff/reports").get_data(as_text=True)


def test_a_claimed_job_cannot_be_claimed_again(app, client, background):
    staff = signed_in(client, Role.ACCOUNTANT)
    first, second = queue(staff), queue(staff)

    with in_app(app):
        assert [claim_next(), claim_next(), claim_next()] == [first, second, None]


def test_two_schedulers_run_a_job_once(committing_app, postgres):
    app = committing_app
    with app.app_context():
        user = create_user("claims@example.org", Role.ACCOUNTANT, "x" * 16)
        job = ExportJob(requested_by_id=user.id, kind="donations", format="csv",
                        params=ExportParams(date(2026, 1, 1), date(2026, 1, 31)).to_json())
        db.session.add(job)
        db.session.commit()
        job_id, user_id = job.id, user.id
    try:
        def scheduler(index):
            with app.app_context():
                return run_exports()

        results = run_threads(2, scheduler)

        assert sorted(r["done"] for r in results) == [0, 1], results
        with app.app_context():
            done = db.session.get(ExportJob, job_id)
            assert done.status is ExportStatus.DONE and done.size_bytes > 0
            assert chunk_count(app, job_id) == 1
    finally:
        with app.app_context():
            db.session.execute(delete(ExportJob).where(ExportJob.id == job_id))
            db.session.execute(delete(StaffUser).where(StaffUser.id == user_id))
            db.session.commit()


def test_files_are_deleted_after_a_day(app, client, background):
    webhook_gift(client)
    staff = signed_in(client, Role.ACCOUNTANT)
    job_id = queue(staff)
    run_scheduler_job(app)
    assert chunk_count(app, job_id) == 1 and job_row(app, job_id)["size_bytes"] > 0
    with in_app(app):
        job = db.session.get(ExportJob, job_id)
        job.finished_at -= timedelta(hours=25)
        db.session.commit()

    assert run_scheduler_job(app)["deleted"] == 1

    assert chunk_count(app, job_id) == 0 and job_row(app, job_id)["size_bytes"] is None
    assert staff.get(f"/staff/reports/jobs/{job_id}/download").status_code == 410
    assert "deleted a day after" in staff.get(f"/staff/reports/jobs/{job_id}").get_data(as_text=True)
    assert run_scheduler_job(app)["deleted"] == 0


def test_the_file_is_stored_in_the_database_so_any_web_host_serves_the_download(app, client, background,
                                                                               monkeypatch, tmp_path):
    for amount in range(1000, 1040):
        webhook_gift(client, amount=amount)
    staff = signed_in(client, Role.ACCOUNTANT)
    monkeypatch.setitem(app.config, "EXPORT_DIRECT_MAX_ROWS", 10_000)
    sent = form()
    with staff.post("/staff/reports", sent) as direct:  # the same export, answered at once
        assert direct.status_code == 200
        expected = direct.get_data()
    monkeypatch.setitem(app.config, "EXPORT_DIRECT_MAX_ROWS", -1)
    job_id = queue(staff, sent)
    monkeypatch.setattr(export_ops, "CHUNK_BYTES", 100)  # a file of many chunks, put back together in order
    scratch = Path(app.config["EXPORT_DIR"])

    assert run_scheduler_job(app)["done"] == 1

    assert chunk_count(app, job_id) == -(-len(expected) // 100) > 10
    assert not list(scratch.glob(f"{job_id}-*"))  # nothing left on the scheduler host's disk
    # Another web host: its own, empty EXPORT_DIR.
    monkeypatch.setitem(app.config, "EXPORT_DIR", str(tmp_path / "another-host"))
    with staff.get(f"/staff/reports/jobs/{job_id}/download") as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(expected))
        assert response.headers["Cache-Control"] == "no-store"
        assert response.get_data() == expected
    assert job_row(app, job_id)["size_bytes"] == len(expected)


@pytest.mark.parametrize("suffix", ["", "/status", "/download"])
def test_staff_without_reports_read_get_403(app, client, background, suffix):
    accountant = signed_in(client, Role.ACCOUNTANT)
    job_id = queue(accountant)
    run_scheduler_job(app)
    other = app.test_client()
    staff = signed_in(other, Role.STAFF)

    with staff.get(f"/staff/reports/jobs/{job_id}{suffix}") as response:
        assert response.status_code == 403
    assert staff.post("/staff/reports", form()).status_code == 403


@pytest.mark.parametrize("suffix", ["", "/status", "/download"])
def test_unknown_job_is_404(client, suffix):
    staff = signed_in(client, Role.ACCOUNTANT)

    assert staff.get(f"/staff/reports/jobs/999999{suffix}").status_code == 404


def test_a_small_export_from_the_form_downloads_at_once(app, client):
    webhook_gift(client)
    staff = signed_in(client, Role.ACCOUNTANT)

    response = staff.post("/staff/reports", form(bom="y"))

    assert response.status_code == 200
    assert response.data.startswith(b"\xef\xbb\xbfdonation_id,")
    assert count(app, ExportJob) == 0
    [entry] = audit_rows(app, AuditEntry.action == "export")
    assert entry["object_type"] == "donations" and entry["detail"]["format"] == "csv"


def test_the_supporters_export_from_the_form(app, client):
    staff = signed_in(client, Role.ADMIN)

    response = staff.post("/staff/reports", form(kind="supporters"))

    assert response.status_code == 200
    assert response.get_data(as_text=True).splitlines()[0].startswith("email,name,consented_at")


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "refunds"}, "Choose one of the exports listed."),
    ({"start": "", "end": ""}, "Choose a first and a last day, a fiscal year or a payout."),
    ({"kind": "supporters", "start": "", "end": ""}, "Choose a first and a last day or a fiscal year."),
    ({"start": "2026-05-02", "end": "2026-05-01"}, "The last day is before the first."),
    ({"start": "", "end": "", "fiscal_year": "20x6"}, "A fiscal year is a year such as 2026."),
    ({"fiscal_year": "2026"}, "Give a fiscal year or first and last days, not both."),
    ({"kind": "supporters", "start": "", "end": "", "payout": "po_123"}, "The supporters export has no payout filter"),
    ({"start": "", "end": "", "payout": "po_12 3"}, "is not a Stripe payout id"),
    ({"format": "pdf"}, "Choose CSV or XLSX."),
])
def test_bad_requests_are_400_with_a_message_and_queue_nothing(app, client, background, fields, message):
    staff = signed_in(client, Role.ACCOUNTANT)

    response = staff.post("/staff/reports", form(**fields))

    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(app, ExportJob) == 0


def test_the_form_needs_its_csrf_token(app, client, background):
    staff = signed_in(client, Role.ACCOUNTANT)

    assert staff.post("/staff/reports", form(), csrf=False).status_code == 400
    assert count(app, ExportJob) == 0


def test_a_large_export_by_link_is_not_queued(app, client, background):
    webhook_gift(client)
    staff = signed_in(client, Role.ACCOUNTANT)

    start, end = recent_days()
    response = staff.get(f"/staff/reports?from={start}&to={end}&format=csv")

    assert response.status_code == 400 and "too large to download at once" in response.get_data(as_text=True)
    assert count(app, ExportJob) == 0
