"""/staff/jobs: each job's schedule and latest runs, failures highlighted, and which scheduler leads."""
from __future__ import annotations

from datetime import timedelta

from donations.db import now_utc
from donations.extensions import db
from donations.job_runs import JobRun, RunOutcome
from donations.leader import SQLiteLease
from donations.scheduler import registered_jobs, run_job
from tests.staff_helpers import in_app, signed_in


def add_run(app, job_id: str, outcome: RunOutcome, *, counts=None, error=None, ago: int = 60, seconds: float = 2.5):
    with in_app(app):
        start = now_utc() - timedelta(seconds=ago)
        db.session.add(JobRun(job_id=job_id, started_at=start, finished_at=start + timedelta(seconds=seconds),
                              outcome=outcome, counts=counts, error=error, process="sched-1:4242"))
        db.session.commit()


def test_every_registered_job_is_listed_with_its_schedule(client):
    staff = signed_in(client, "staff")

    page = staff.get("/staff/jobs").get_data(as_text=True)

    for job in registered_jobs(client.application.config):
        assert f'id="job-{job.id}"' in page and job.name.replace("'", "&#39;") in page
    assert "Runs every 5 s." in page and "Runs daily at 05:30 UTC." in page
    assert "No runs yet." in page


def test_the_latest_runs_show_start_duration_outcome_counts_and_process(client):
    app = client.application
    add_run(app, "outbox.send", RunOutcome.OK, counts={"sent": 3, "retry": 0, "failed": 0})
    staff = signed_in(client, "accountant")

    page = staff.get("/staff/jobs").get_data(as_text=True)

    section = page.split('id="job-outbox.send"')[1].split("</section>")[0]
    assert "2.5 s" in section and "sent 3, retry 0, failed 0" in section and "sched-1:4242" in section
    assert 'data-outcome="ok"' in section and "Failed on the last run" not in page


def test_a_job_whose_last_run_failed_is_named_at_the_top_and_its_error_shown(client):
    app = client.application
    add_run(app, "ledger.books", RunOutcome.OK, ago=600)
    add_run(app, "ledger.books", RunOutcome.FAILED, error="GatewayError: Stripe is unreachable", ago=60)
    staff = signed_in(client, "admin")

    page = staff.get("/staff/jobs").get_data(as_text=True)

    assert "Failed on the last run: <strong>ledger.books</strong>" in page
    section = page.split('id="job-ledger.books"')[1].split("</section>")[0]
    assert 'class="mismatch"' in section and "GatewayError: Stripe is unreachable" in section
    assert '<section class="job failing" id="job-ledger.books">' in page


def test_a_run_recorded_by_the_real_wrapper_is_shown(client):
    app = client.application

    def broken():
        raise RuntimeError("the template is missing")

    run_job(app, broken, "reports.scheduled")
    page = signed_in(client, "staff").get("/staff/jobs").get_data(as_text=True)

    assert "RuntimeError: the template is missing" in page


def test_the_leader_and_the_standby_are_shown(client):
    app = client.application
    with in_app(app):
        leader, standby = SQLiteLease("sched-1:4242", 30), SQLiteLease("sched-2:777", 30)
        assert leader.acquire() and not standby.acquire()
        standby.note_standby()
    page = signed_in(client, "staff").get("/staff/jobs").get_data(as_text=True)

    assert 'Leader: <strong class="holder">sched-1:4242</strong>' in page
    assert '<span class="standby">sched-2:777</span>' in page
    assert "has not been heard from" not in page


def test_no_leader_is_an_alert(client):
    page = signed_in(client, "staff").get("/staff/jobs").get_data(as_text=True)

    assert "No scheduler leads" in page


def test_the_nav_links_to_the_jobs_page(client):
    page = signed_in(client, "accountant").get("/staff/").get_data(as_text=True)

    assert 'href="/staff/jobs"' in page
