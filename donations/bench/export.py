"""Export: every donation in the database to CSV by the app's own export job, against PostgreSQL's COPY.

Issue 9 promises that the donations export of a big publisher (1,000,000 donations) takes at most twice as long
as PostgreSQL writing the same columns with ``COPY (SELECT …) TO STDOUT WITH CSV HEADER``, and that the process
doing it never holds 200 MB or more.

The app's side is the scheduled export as staff get it: an ``export_jobs`` row (queued by the benchmark, as
/staff/reports queues one) written by :func:`donations.reports.operations.run_export` (the count, the progress
updates, :func:`~donations.reports.registry.write_csv` and the file under EXPORT_DIR). The reference is psycopg's
``cursor.copy()`` of one SELECT computing the same values (money in major units, times in UTC, the booking note
only when the booking day differs), written to a file in COPY's chunks. Each side runs in a fresh Python process,
which reports the seconds of its work (after its connection is open) and its peak resident memory (ru_maxrss).
Runs alternate between the sides, the first side swapping every round, so that the machine's load and
PostgreSQL's caches favour neither.

The files are then compared: the same number of CSV records as there are donations, and, for the first run,
every cell of every row, the reference's text cells put through the app's text rule (registry.text_cell:
formula defusing and LF line ends), which COPY does not apply.
"""
from __future__ import annotations

import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from .results import ROOT, Section, machine_info

#: The app's target: the export takes at most this many times as long as the COPY.
TIME_GOAL = 2.0
#: The app's target: the exporting process's peak resident memory stays below this (MB).
MEMORY_GOAL_MB = 200
BENCH_USER = "bench-export@bench.example"

#: The columns the app writes as text (defused, line ends as LF); the others are numbers, codes and dates.
TEXT_COLUMNS = {"supporter_email", "supporter_name", "campaign", "article_url", "stripe_payment_intent",
                "stripe_invoice", "stripe_subscription", "receipt_number", "payout_id", "note"}


def reference_sql(exponents: dict[str, int]) -> str:
    """The donations export's columns as PostgreSQL computes them, in the export's order, without the app's
    CSV rules (COPY quotes by its own and defuses nothing)."""

    def money(column: str, currency: str) -> str:
        if not exponents:
            return f"{column}::numeric"
        # amount × 0.01 is a numeric of scale 2 (25.00), as Money.major_str writes it.
        arms = " ".join(f"WHEN '{code}' THEN {column} * {Decimal(10) ** -places:f}" if places
                        else f"WHEN '{code}' THEN {column}::numeric" for code, places in sorted(exponents.items()))
        return f"CASE {currency} {arms} END"

    settled = "coalesce(nullif(d.settlement_currency, ''), d.currency)"
    utc = "replace(to_char(d.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || 'Z'"
    payout = ("(SELECT p.stripe_payout_id FROM ledger_lines l JOIN payouts p ON p.id = l.payout_id "
              "WHERE l.donation_id = d.id AND l.kind = 'gift' LIMIT 1)")
    return f"""
        SELECT d.id AS donation_id, {utc} AS paid_at, s.email AS supporter_email, s.name AS supporter_name,
               {money('d.amount', 'd.currency')} AS amount, d.currency, {money('d.fee', settled)} AS fee,
               {money('d.net', settled)} AS net, d.frequency, d.status,
               {money('d.amount_refunded', 'd.currency')} AS amount_refunded, c.slug AS campaign, d.article_url,
               d.stripe_payment_intent_id AS stripe_payment_intent, d.stripe_invoice_id AS stripe_invoice,
               d.stripe_subscription_id AS stripe_subscription, d.receipt_number, {payout} AS payout_id,
               d.settlement_currency, nullif(d.exchange_rate, '')::numeric AS exchange_rate,
               to_char(d.booked_on, 'YYYY-MM-DD') AS booked_on,
               CASE WHEN d.booked_on IS NOT DISTINCT FROM (d.paid_at AT TIME ZONE 'UTC')::date THEN NULL
                    ELSE d.booking_note END AS note
        FROM donations d JOIN supporters s ON s.id = d.supporter_id LEFT JOIN campaigns c ON c.id = d.campaign_id
        ORDER BY coalesce(d.paid_at, d.created_at), d.id"""


# -- the two sides, each in a process of its own ----------------------------------------------------------

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _child_app(job_id: int, path: str) -> dict:
    """The scheduler's work for one export job, in this fresh process; then, off the clock, the stored file
    copied out of export_chunks into ``path`` for the comparison."""
    from sqlalchemy import text

    from donations import create_app
    from donations.extensions import db
    from donations.reports import operations

    app = create_app()
    written = {}
    store = operations._store

    def timed_store(job_id: int, partial: Path) -> int:
        # run_export stores the file once it is complete: the moment the CSV is written, as the clock sees it.
        written["at"] = time.perf_counter()
        return store(job_id, partial)

    operations._store = timed_store
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # the connection is open before the clock starts, as for COPY
        db.session.commit()
        started = time.perf_counter()
        ok = operations.run_export(job_id)
        seconds = time.perf_counter() - started
        peak = _peak_mb()
        with open(path, "wb") as out:
            for data in operations.file_chunks(job_id):
                out.write(data)
    return {"ok": ok, "seconds": seconds, "written_seconds": written["at"] - started if written else None,
            "peak_mb": peak}


def _child_reference(sql: str, path: str) -> dict:
    """COPY … TO STDOUT WITH CSV HEADER into ``path``, in this fresh process, on DATABASE_URL."""
    import psycopg

    with psycopg.connect(_libpq(os.environ["DATABASE_URL"])) as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        with open(path, "wb") as out, cursor.copy(f"COPY ({sql}) TO STDOUT WITH CSV HEADER") as copy:
            for chunk in copy:
                out.write(chunk)
        seconds = time.perf_counter() - started
        rows = cursor.rowcount
    return {"ok": True, "seconds": seconds, "peak_mb": _peak_mb(), "rows": rows}


def _run_child(args: list[str], env: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "donations.bench.export", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{args[0]} side failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


# -- the files -------------------------------------------------------------------------------------------

def csv_records(path: Path) -> int:
    """Data records in a CSV file (its header not counted); a quoted line end does not start a record."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def compare(app_file: Path, reference_file: Path) -> tuple[int, list[str]]:
    """Every row and cell of the two files, in order, the reference's text cells put through text_cell.
    Returns the rows compared and a description of the first few differences (none when they agree)."""
    from donations.reports.registry import text_cell

    problems: list[str] = []
    compared = 0
    with open(app_file, newline="", encoding="utf-8-sig") as a, open(reference_file, newline="",
                                                                      encoding="utf-8") as r:
        app_rows, reference_rows = csv.reader(a), csv.reader(r)
        header, reference_header = next(app_rows, None), next(reference_rows, None)
        if header != reference_header:
            return 0, [f"headers differ: {header} / {reference_header}"]
        text_at = [i for i, name in enumerate(header) if name in TEXT_COLUMNS]
        sentinel = object()
        while True:
            row, reference = next(app_rows, sentinel), next(reference_rows, sentinel)
            if row is sentinel or reference is sentinel:
                if row is not reference:
                    problems.append(f"one file ends after {compared} rows, the other goes on")
                break
            for i in text_at:
                reference[i] = text_cell(reference[i])
            if row != reference:
                cells = [f"{header[i]}: {row[i]!r} / {reference[i]!r}"
                         for i in range(min(len(row), len(reference))) if row[i] != reference[i]]
                problems.append(f"row {compared + 1} (donation {row[0]}): " + "; ".join(cells or ["length"]))
                if len(problems) >= 5:
                    break
            compared += 1
    return compared, problems


# -- the measurement -------------------------------------------------------------------------------------

@dataclass
class Side:
    seconds: list[float] = field(default_factory=list)
    #: The app's: until the CSV file was complete, before it was stored in export_chunks.
    written_seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    load: list[float] = field(default_factory=list)


def _libpq(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def measure(engine, database_url: str, postgres_version: str | None, *, runs: int, work_dir: Path,
            smoke: bool = False, echo=print) -> tuple[Section, list[str]]:
    """Export every donation ``runs`` times with the app and with COPY, alternating; the section and the
    correctness failures (empty when the files hold exactly the donations, cell for cell)."""
    from sqlalchemy import text

    from donations.money import currency_exponent
    from donations.reports.registry import ExportParams

    work_dir.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        donations = conn.execute(text("SELECT count(*) FROM donations")).scalar_one()
        first, last = conn.execute(text(
            "SELECT least(min(booked_on), min((created_at AT TIME ZONE 'UTC')::date)), "
            "greatest(max(booked_on), max((created_at AT TIME ZONE 'UTC')::date)) FROM donations")).one()
        codes = {code for row in conn.execute(text(
            "SELECT DISTINCT currency, settlement_currency FROM donations")) for code in row if code}
    exponents = {code: currency_exponent(code) for code in codes}
    # Every donation: from the first day anything is booked or created to the last.
    params = ExportParams(start=first or date.today(), end=last or date.today())
    sql = reference_sql(exponents)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "SMTP_", "FLASK_"))}
    env.update(DATABASE_URL=database_url, DONATIONS_ENV="development", EXPORT_DIR=str(work_dir))
    env.pop("REPORTS_DATABASE_URL", None)  # both sides read the same database
    echo(f"  {donations:,} donations, {params.start} to {params.end}; currencies {', '.join(sorted(codes)) or '–'}")

    app_side, reference_side = Side(), Side()
    failures: list[str] = []
    compared = None
    with engine.begin() as conn:  # an accountant who asks for the export, as on /staff/reports
        user_id = conn.execute(text(
            "INSERT INTO staff_users (email, password_hash, role, active, created_at) "
            "VALUES (:email, '!', 'accountant', false, now()) RETURNING id"), {"email": BENCH_USER}).scalar_one()
    try:
        for number in range(1, runs + 1):
            order = ("app", "reference") if number % 2 else ("reference", "app")
            files = {}
            for side_name in order:
                load = os.getloadavg()[0]
                if side_name == "app":
                    with engine.begin() as conn:
                        job_id = conn.execute(text(
                            "INSERT INTO export_jobs (requested_by_id, kind, params, format, bom, status, "
                            "rows_done, created_at, started_at) VALUES (:user, 'donations', :params, 'csv', "
                            "false, 'running', 0, now(), now()) RETURNING id"),
                            {"user": user_id, "params": json.dumps(params.to_json())}).scalar_one()
                    path = work_dir / f"app-{number}.csv"
                    outcome = _run_child(["app", str(job_id), str(path)], env)
                    with engine.connect() as conn:
                        status, error = conn.execute(text(
                            "SELECT status, error FROM export_jobs WHERE id = :id"), {"id": job_id}).one()
                    if not outcome["ok"] or status != "done":
                        raise RuntimeError(f"the export job failed: {error}")
                    side = app_side
                    side.written_seconds.append(outcome["written_seconds"])
                else:
                    path = work_dir / f"reference-{number}.csv"
                    outcome = _run_child(["reference", sql, str(path)], env)
                    side = reference_side
                files[side_name] = path
                side.seconds.append(outcome["seconds"])
                side.peak_mb.append(outcome["peak_mb"])
                side.rows.append(csv_records(path))
                side.bytes.append(path.stat().st_size)
                side.load.append(load)
                echo(f"  run {number}/{runs} {side_name}: {outcome['seconds']:.2f} s, "
                     f"peak {outcome['peak_mb']:.0f} MB, {side.rows[-1]:,} rows, {side.bytes[-1]:,} bytes, "
                     f"load {load:.2f}")
            for side_name, side in (("app", app_side), ("reference", reference_side)):
                if side.rows[-1] != donations:
                    failures.append(f"run {number}: the {side_name}'s file holds {side.rows[-1]:,} rows, "
                                    f"not the {donations:,} donations")
            if number == 1:
                compared, problems = compare(files["app"], files["reference"])
                failures += [f"the files differ: {problem}" for problem in problems]
                echo(f"  compared {compared:,} rows cell by cell: "
                     + ("the same" if not problems else f"{len(problems)} difference(s) shown"))
            for path in files.values():
                path.unlink(missing_ok=True)
    finally:
        for leftover in [*work_dir.glob("*.csv"), *work_dir.glob("*.part")]:  # the files hold personal data
            leftover.unlink(missing_ok=True)
        with engine.begin() as conn:
            # export_chunks go with their job (ON DELETE CASCADE).
            conn.execute(text("DELETE FROM export_jobs WHERE requested_by_id = :user"), {"user": user_id})
            conn.execute(text("DELETE FROM staff_users WHERE id = :user"), {"user": user_id})
    section = summarise(app_side, reference_side, donations=donations, compared=compared, failures=failures,
                        postgres_version=postgres_version, runs=runs, smoke=smoke, params=params)
    return section, failures


def summarise(app: Side, reference: Side, *, donations: int, compared: int | None, failures: list[str],
              postgres_version: str | None, runs: int, smoke: bool, params) -> Section:
    # Runs alternate, so run i of each side saw about the same load: the median of the paired ratios.
    paired = [a / r for a, r in zip(app.seconds, reference.seconds) if r]
    ratio = statistics.median(paired) if paired else None
    paired_written = [a / r for a, r in zip(app.written_seconds, reference.seconds) if r and a is not None]
    ratio_written = statistics.median(paired_written) if paired_written else None
    app_peak = max(app.peak_mb) if app.peak_mb else None

    def judged(ok: bool) -> str:
        return "not judged (smoke run)" if smoke else ("met" if ok else "not met")

    def median(values):
        return statistics.median(values) if values else None

    from donations.reports.exports import COPY_BATCH

    rows_ok = app.rows and all(n == donations for n in app.rows + reference.rows)
    rows = [
        {"measure": "time until the CSV file is complete (s)", "app": median(app.written_seconds),
         "reference": median(reference.seconds),
         "ratio": round(ratio_written, 3) if ratio_written is not None else None,
         "ratio_range": f"{min(paired_written):.2f}–{max(paired_written):.2f}" if paired_written else None,
         "goal": None, "verdict": None, "runs_app": [round(s, 2) for s in app.written_seconds],
         "runs_reference": [round(s, 2) for s in reference.seconds]},
        {"measure": "wall time, until stored (done) (s)", "app": median(app.seconds),
         "reference": median(reference.seconds),
         "ratio": round(ratio, 3) if ratio is not None else None,
         "ratio_range": f"{min(paired):.2f}–{max(paired):.2f}" if paired else None,
         "goal": f"≤ {TIME_GOAL}×", "verdict": judged(ratio is not None and ratio <= TIME_GOAL),
         "runs_app": [round(s, 2) for s in app.seconds], "runs_reference": [round(s, 2) for s in reference.seconds]},
        {"measure": "peak memory (MB, max RSS of the process)", "app": app_peak,
         "reference": max(reference.peak_mb) if reference.peak_mb else None,
         "ratio": None, "ratio_range": None, "goal": f"app < {MEMORY_GOAL_MB} MB",
         "verdict": judged(app_peak is not None and app_peak < MEMORY_GOAL_MB),
         "runs_app": [round(m) for m in app.peak_mb], "runs_reference": [round(m) for m in reference.peak_mb]},
        {"measure": "rows (CSV records, header not counted)", "app": median(app.rows),
         "reference": median(reference.rows), "ratio": None, "ratio_range": None,
         "goal": f"= {donations:,} donations",
         "verdict": "exact" if rows_ok else "wrong count", "runs_app": app.rows, "runs_reference": reference.rows},
        {"measure": "bytes", "app": median(app.bytes), "reference": median(reference.bytes),
         "ratio": round(median(app.bytes) / median(reference.bytes), 3) if app.bytes and reference.bytes else None,
         "ratio_range": None, "goal": None, "verdict": None, "runs_app": app.bytes,
         "runs_reference": reference.bytes},
    ]
    loads = app.load + reference.load
    notes = [
        ("Same rows: " + (f"the first run's files were compared row by row and cell by cell ({compared:,} rows), "
                          "the reference's text cells put through the app's text rule (a leading = + - @ tab or "
                          "CR gets a ', line ends become LF), which COPY does not apply; "
                          + ("they are the same." if not any("differ" in f for f in failures)
                             else "they are NOT the same (see the failures).")
                          if compared is not None else "not compared (no run).")),
        "Time: each side in a fresh Python process, from an open database connection to the file closed; the "
        "app's includes the job's COUNT and its progress updates every 2,000 rows, as staff get it. The app's "
        "job then stores the file in PostgreSQL (export_chunks, 1 MiB rows, committed with the job's done): "
        "\"until the CSV file is complete\" stops the clock before that, \"until stored (done)\" after, and "
        "the target is judged on the whole job. The reference only writes its file.",
        "Memory: ru_maxrss of each process at its end (its high-water mark, the interpreter and the app "
        "included).",
        "Where the files go: the app writes an export file to EXPORT_DIR scratch, then stores it in PostgreSQL "
        "(export_chunks), which every web host shares, and deletes the scratch file.",
        "How the app writes: PostgreSQL makes each CSV line (one COPY (SELECT …) TO STDOUT WITH CSV on a "
        "connection of the export's own, the cells computed in SQL), while the job's progress is written "
        "through other connections. Where the session is held to one connection (the tests), it reads in "
        f"COPYs of {COPY_BATCH:,} donations by the export's order and writes "
        "the progress between them.",
    ]
    if loads:
        notes.append(f"Load average (1 min) as the runs started: {min(loads):.2f} to {max(loads):.2f} "
                     f"(median {statistics.median(loads):.2f}) on {os.cpu_count()} CPUs, shared with PostgreSQL.")
    if not smoke and ratio is not None and ratio > TIME_GOAL:
        notes.append(_gap_note(ratio, ratio_written))
    notes += [f"Failure: {failure}" for failure in failures]
    return Section(
        name="export",
        title="Export: every donation to CSV versus PostgreSQL's COPY",
        intro=("The app's side is the scheduled donations export (an export job run by run_export: the file "
               "written under EXPORT_DIR, then stored in export_chunks); the reference is psycopg's COPY (SELECT "
               "the same columns, computed "
               "by PostgreSQL) TO STDOUT WITH CSV HEADER, written to a file. Runs alternate between the sides, "
               "the first side swapping each round. Ratio = the median over the runs of the app's seconds "
               "divided by the COPY's in the same round."),
        columns=[("measure", "Measure"), ("app", "App (median)"), ("reference", "COPY (median)"),
                 ("ratio", "Ratio app/COPY"), ("ratio_range", "Ratio range"), ("goal", "Target"),
                 ("verdict", "Verdict"), ("runs_app", "App runs"), ("runs_reference", "COPY runs")],
        rows=rows,
        settings={"donations": donations, "period": params.label(), "runs": runs},
        notes=notes,
        machine=machine_info(postgres_version, psycopg=_version("psycopg"), sqlalchemy=_version("sqlalchemy")),
        smoke=smoke,
    )


def _gap_note(ratio: float, ratio_written: float | None) -> str:
    if ratio_written is not None and ratio_written <= TIME_GOAL:
        return (f"The gap is the storing: the file is complete at {ratio_written:.2f}× the COPY, the job is done "
                f"at {ratio:.2f}×. Writing the file's bytes into export_chunks (bytea, WAL-logged) costs the "
                "difference. The plan: store chunks while the file is written (the same transaction, "
                "committed with the done), or keep files on shared storage.")
    written = f"{ratio_written:.2f}× until the file is complete, " if ratio_written is not None else ""
    return (f"The gap ({ratio:.2f}× done, {written}the rest is storing it in export_chunks): the app's COPY "
            "computes each cell by the app's text rules (formula defusing, line ends: a strpos and an ascii per "
            "text cell) where the reference's passes the columns as they are, and the app's process turns each "
            "line into text and writes it with its CRLF. The plan: profile the cells in SQL, and let the SQL "
            "path write COPY's bytes to the file without making a str of each line.")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":  # a side's process: python -m donations.bench.export app JOB_ID PATH | reference …
    if sys.argv[1] == "app":
        result = _child_app(int(sys.argv[2]), sys.argv[3])
    else:
        result = _child_reference(*sys.argv[2:4])
    print(json.dumps(result))
