"""Outbox: receipts sent by the app's sender versus plain smtplib sending the same messages over one connection.

Issue 9's measurement 5: ``count`` receipts are queued the way the ledger queues them (the receipt function's
context, the receipt templates, ``outbox.queue``), then sent by ``send_due`` called in a loop, as the scheduler's
job calls it, until it finds nothing left; the reference hands the same messages, already built, to one
``smtplib.SMTP`` connection. Both talk to the same kind of server: aiosmtpd on loopback in a process of its own
(donations.bench.smtp_sink), which accepts and counts. Runs alternate between the two, so that whatever else the
machine does falls on both alike; ratio = the app's messages per second ÷ smtplib's (target ≥ 0.5).

Correctness is checked on every run, and a failure fails the command: the server got exactly ``count`` messages with
``count`` distinct Message-IDs, and exactly ``count`` outbox rows are marked sent.
"""
from __future__ import annotations

import json
import os
import smtplib
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from io import BytesIO

from flask import current_app
from sqlalchemy import delete, func, select

from ..db import now_utc
from ..extensions import db
from ..ledger.models import Donation, Frequency, Supporter
from ..mail import outbox
from ..mail.emails import receipt_context
from ..mail.models import EmailStatus, OutboxEmail
from ..mail.sender import MARK_GROUP, build_message, send_due
from .results import ROOT, Section, machine_info

#: The benchmark's outbox rows: queued and deleted by it, never anyone else's.
KEY_PREFIX = "bench-outbox:"
GOAL = 0.5
#: send_due's own batch size (its default), as the scheduler's job calls it.
BATCH = 200
#: Gifts as a big publisher's receipts show them: several currencies, amounts in minor units.
AMOUNTS = [(2500, "EUR"), (1000, "USD"), (500, "GBP"), (3000, "JPY"), (12000, "EUR"), (5000, "USD")]


class MeasurementFailed(Exception):
    """A run did not do the work it was asked to: its figures would mean nothing."""


class Sink:
    """The counting SMTP server (donations.bench.smtp_sink) in a process of its own; a context manager whose
    ``summary`` (messages, distinct Message-IDs, bytes) is there once it has stopped."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.summary: dict | None = None

    def __enter__(self) -> Sink:
        self.process = subprocess.Popen([sys.executable, "-m", "donations.bench.smtp_sink"], cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc) -> None:
        try:  # closing its standard input is the sink's signal to stop and report
            out, _ = self.process.communicate("", timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        lines = [line for line in out.splitlines() if line.startswith("{")]
        self.summary = json.loads(lines[-1]) if lines else None


@dataclass
class Run:
    side: str  #: "app" or "reference"
    messages: int
    seconds: float
    delivered: int  #: messages the server accepted
    distinct_ids: int
    load_before: float
    cpu_seconds: float = 0.0  #: this process's CPU time during the run (the sender's own work, not the server's)

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def _receipt(n: int, paid_at) -> Donation:
    """A succeeded one-off gift as record_payment leaves it, never added to the session: only its receipt is
    wanted, through the same context function and templates as a real one."""
    amount, currency = AMOUNTS[n % len(AMOUNTS)]
    supporter = Supporter(id=n + 1, email=f"reader{n}@bench.example.org", name=f"Reader {n}" if n % 3 else None)
    return Donation(id=n + 1, supporter=supporter, amount=amount, currency=currency, covered_fee=0,
                    frequency=Frequency.ONE_OFF, paid_at=paid_at, receipt_number=f"{paid_at.year}-B{n:06d}")


def queue_receipts(count: int, run: int) -> float:
    """Queue ``count`` receipts under this run's dedupe keys, committed every thousand; the seconds it took."""
    started = time.perf_counter()
    paid_at = now_utc()
    for n in range(count):
        donation = _receipt(n, paid_at)
        outbox.queue("receipt", donation.supporter.email, receipt_context(donation),
                     dedupe_key=f"{KEY_PREFIX}{run}:{n}")
        if n % 1000 == 999:
            db.session.commit()
    db.session.commit()
    return time.perf_counter() - started


def prebuilt_messages() -> list[tuple[str, list[str], bytes]]:
    """The queued benchmark emails as the app's sender would put them on the wire (its own build_message,
    flattened as smtplib.send_message flattens): (sender, recipients, bytes) for plain smtplib."""
    sender = current_app.config["MAIL_FROM"]
    built = []
    for email in db.session.scalars(select(OutboxEmail).where(OutboxEmail.dedupe_key.startswith(KEY_PREFIX))
                                    .order_by(OutboxEmail.id)):
        buffer = BytesIO()
        BytesGenerator(buffer).flatten(build_message(email, sender), linesep="\r\n")
        built.append((sender, [email.to_address], buffer.getvalue()))
    db.session.rollback()
    return built


def clear() -> None:
    db.session.execute(delete(OutboxEmail).where(OutboxEmail.dedupe_key.startswith(KEY_PREFIX)))
    db.session.commit()


def foreign_pending() -> int:
    """Pending emails the benchmark did not queue: send_due would send them to the sink too."""
    return db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.status == EmailStatus.PENDING, ~OutboxEmail.dedupe_key.startswith(KEY_PREFIX)))


def run_app(count: int, run: int) -> tuple[Run, float]:
    """Queue ``count`` receipts, then send_due until it finds nothing to do; the run and the queueing time."""
    clear()
    queued_in = queue_receipts(count, run)
    load_before = os.getloadavg()[0]
    with Sink() as sink:
        config = current_app.config
        saved = config["SMTP_URL"]
        config["SMTP_URL"] = f"smtp://127.0.0.1:{sink.port}"
        try:
            sent = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            while True:  # the scheduler's job, back to back: each call claims a batch and sends it
                counts = send_due(limit=BATCH)
                sent += counts["sent"]
                if not any(counts.values()):
                    break
                if counts["retry"] or counts["failed"]:
                    raise MeasurementFailed(f"app run {run}: send_due reported {counts}")
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        finally:
            config["SMTP_URL"] = saved
    marked = db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.dedupe_key.startswith(f"{KEY_PREFIX}{run}:"), OutboxEmail.status == EmailStatus.SENT))
    db.session.rollback()
    result = Run("app", count, seconds, sink.summary["messages"], sink.summary["distinct_message_ids"], load_before,
                 cpu)
    problems = []
    if sent != count:
        problems.append(f"send_due counted {sent:,} sent")
    if marked != count:
        problems.append(f"{marked:,} rows are marked sent")
    if result.delivered != count or result.distinct_ids != count:
        problems.append(f"the server got {result.delivered:,} messages with {result.distinct_ids:,} Message-IDs")
    if problems:
        raise MeasurementFailed(f"app run {run}, {count:,} receipts: " + "; ".join(problems))
    return result, queued_in


def run_reference(messages: list[tuple[str, list[str], bytes]], run: int) -> Run:
    """The same messages, already built, over one plain smtplib connection."""
    load_before = os.getloadavg()[0]
    with Sink() as sink:
        started, cpu_started = time.perf_counter(), time.process_time()
        connection = smtplib.SMTP("127.0.0.1", sink.port, timeout=30)
        connection.ehlo()
        for sender, recipients, data in messages:
            connection.sendmail(sender, recipients, data)
        connection.quit()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    result = Run("reference", len(messages), seconds, sink.summary["messages"],
                 sink.summary["distinct_message_ids"], load_before, cpu)
    if result.delivered != len(messages) or result.distinct_ids != len(messages):
        raise MeasurementFailed(f"reference run {run}: the server got {result.delivered:,} of {len(messages):,} "
                                f"messages ({result.distinct_ids:,} Message-IDs)")
    return result


@dataclass
class Outcome:
    app: list[Run] = field(default_factory=list)
    reference: list[Run] = field(default_factory=list)
    queue_seconds: list[float] = field(default_factory=list)
    failure: str | None = None


def measure(count: int, runs: int, echo=print) -> Outcome:
    """Alternate app and reference runs, ``runs`` of each; stops at the first failed correctness check."""
    outcome = Outcome()
    try:
        clear()
        queue_receipts(count, 0)
        messages = prebuilt_messages()  # the bytes of the very receipts the app sends
        clear()
        for number in range(1, runs + 1):
            app_run, queued_in = run_app(count, number)
            outcome.app.append(app_run)
            outcome.queue_seconds.append(queued_in)
            clear()
            echo(f"  run {number}/{runs} app: {app_run.per_s:,.0f} messages/s ({app_run.seconds:.2f} s), "
                 f"load {app_run.load_before:.2f}")
            reference = run_reference(messages, number)
            outcome.reference.append(reference)
            echo(f"  run {number}/{runs} smtplib: {reference.per_s:,.0f} messages/s ({reference.seconds:.2f} s), "
                 f"load {reference.load_before:.2f}")
    except MeasurementFailed as failed:
        outcome.failure = str(failed)
        echo(f"  failed: {failed}")
    finally:
        db.session.rollback()
        clear()
    return outcome


def summarise(outcome: Outcome, *, count: int, runs: int, postgres_version: str | None, smoke: bool) -> Section:
    # Runs alternate, so app run i and reference run i saw the same moment's load: the median of these paired
    # ratios is steadier on a busy machine than a ratio of two medians.
    paired = [a.per_s / r.per_s for a, r in zip(outcome.app, outcome.reference) if r.per_s]
    ratio = statistics.median(paired) if paired else None
    if outcome.failure:
        verdict = "failed: " + outcome.failure
    elif smoke:
        verdict = "not judged (smoke run)"
    else:
        verdict = "met" if ratio is not None and ratio >= GOAL else "not met"

    def row(target: str, side: list[Run], **extra) -> dict:
        return {
            "target": target,
            "messages_per_s": statistics.median(r.per_s for r in side) if side else None,
            "seconds": statistics.median(r.seconds for r in side) if side else None,
            "messages": count,
            "delivered": [r.delivered for r in side],
            "runs_per_s": [round(r.per_s, 1) for r in side],
            "cpu_ms_per_message": round(statistics.median(r.cpu_seconds / r.messages * 1000 for r in side), 3)
            if side else None,
            "ratio": None, "ratio_range": None, "goal": None, "verdict": "reference", **extra,
        }

    rows = [
        row("plain smtplib, one connection, messages built beforehand", outcome.reference,
            note="smtplib.SMTP.sendmail of the bytes the app's sender puts on the wire"),
        row("the app: send_due in a loop (the scheduler's job)", outcome.app,
            ratio=round(ratio, 3) if ratio is not None else None,
            ratio_range=f"{min(paired):.2f}–{max(paired):.2f}" if paired else None,
            goal=f"≥ {GOAL}", verdict=verdict,
            note="claims, builds each MIME message, marks its progress, sends, books each outcome"),
    ]
    loads = [r.load_before for r in outcome.app + outcome.reference]
    queued = statistics.median(count / s for s in outcome.queue_seconds) if outcome.queue_seconds else None
    notes = [
        "Both sides send to aiosmtpd on loopback, in a process of its own, which accepts every message (250) and "
        "counts them; each run has a fresh server. Checked on every run: the server got exactly the messages sent, "
        "with as many distinct Message-IDs, and exactly as many outbox rows are marked sent.",
        "The app's figure is the sending alone: the receipts are queued (rendered from the receipt templates and "
        "committed) before its clock starts"
        + (f", at {queued:,.0f} receipts/s." if queued else "."),
    ]
    notes.append(
        "Per email, the app's sender does what smtplib does (one SMTP exchange: four round trips to the server) and "
        "more: it builds the MIME message from the stored row and flattens it, and books the email's outcome before "
        "the next email goes out, so that a sender that dies sends at most the one email in flight twice. The "
        "outcome is one UPDATE on a connection the sender keeps for the batch in autocommit mode, not waiting for "
        "the disk: one round trip to PostgreSQL, where a transaction of the session's took five. The marks that "
        f"make a re-send counted go in groups of {MARK_GROUP} emails per commit, and the batch of {BATCH} is "
        "claimed and read in one query each.")
    if verdict == "not met":
        cpu = {name: r["cpu_ms_per_message"] for name, r in zip(("reference", "app"), rows)}
        own = (f" (here {cpu['app']:.2f} ms of CPU per email against smtplib's {cpu['reference']:.2f} ms)"
               if cpu["app"] is not None and cpu["reference"] is not None else "")
        notes.append(
            "Gap and plan: the sender waits for five round trips per email where smtplib waits for four, and does "
            f"more work of its own per email{own}: building and flattening the MIME message, SQLAlchemy and psycopg "
            "for the outcome, send_message; on a busy machine each wait also waits for a time slice. Next steps, in "
            "order: send the next email's envelope (MAIL FROM, RCPT TO, DATA) while the previous outcome's UPDATE "
            "is in flight, and wait for its commit before the content goes out (a server accepts nothing before "
            "the content's final dot, so a sender that dies still re-sends at most one email); write the MIME "
            "bytes directly for the common case (ASCII addresses, base64 parts) rather than through email.mime and "
            "its generator; issue the outcome through a prepared statement on the driver's connection.")
    if loads:
        notes.append(f"Load average (1 min) as the runs started: {min(loads):.2f} to {max(loads):.2f} "
                     f"(median {statistics.median(loads):.2f}) on {os.cpu_count()} CPUs; the sender, the SMTP "
                     "server and PostgreSQL share them.")
    from importlib.metadata import version

    return Section(
        name="outbox",
        title="Outbox: receipts sent by the app versus plain smtplib over one connection",
        intro=(f"{count:,} receipts queued as the ledger queues them and sent by the app's sender to a local SMTP "
               "server, against smtplib sending the same messages over one connection to the same kind of server. "
               "Runs alternate; ratio = the median over the runs of the app's messages/s divided by smtplib's in "
               f"the same round (target ≥ {GOAL})."),
        columns=[("target", "Sender"), ("messages_per_s", "Messages/s (median)"), ("ratio", "Ratio to smtplib"),
                 ("ratio_range", "Ratio range"), ("goal", "Target ratio"), ("verdict", "Verdict"),
                 ("seconds", "Seconds (median)"), ("cpu_ms_per_message", "Sender's CPU ms/message"),
                 ("messages", "Messages per run"), ("note", "Note")],
        rows=rows,
        settings={"messages per run": count, "runs": runs, "send_due batch": BATCH, "marks per commit": MARK_GROUP},
        notes=notes,
        machine=machine_info(postgres_version, aiosmtpd=version("aiosmtpd")),
        smoke=smoke,
    )
