"""flask --app app bench <measurement>: the benchmark suite's commands (issue 9 adds seed, renewals, export…)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from .results import ROOT

bench = AppGroup("bench", help="Benchmarks: the app side by side with a reference (make bench).")

#: Every measurement writes its section into the same results file.
output_option = click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=ROOT / "docs" / "benchmarks.json",
    show_default="docs/benchmarks.json", help="The JSON results file; the Markdown page is written beside it (.md).")


def _postgres_version() -> str:
    """PostgreSQL's version; refuses any other database, whose figures would say nothing about production."""
    from sqlalchemy import text

    from ..extensions import db

    if db.engine.dialect.name != "postgresql":
        raise click.UsageError(
            "the benchmarks run against PostgreSQL, as production does, and DATABASE_URL names "
            f"{db.engine.dialect.name}: set DATABASE_URL=postgresql+psycopg://user:password@127.0.0.1:5432/db "
            "(upgraded with `flask --app app db upgrade`)")
    with db.engine.connect() as conn:
        return conn.execute(text("SHOW server_version")).scalar_one().split(" ")[0]


def _require_wrk() -> None:
    from .load import WRK_MISSING, wrk_path

    if not wrk_path():
        raise click.ClickException(WRK_MISSING)


@bench.command("embed")
@click.option("--seconds", type=click.IntRange(1, 600), default=10, show_default=True,
              help="How long each run loads a target (whole seconds, as wrk takes them).")
@click.option("--runs", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Runs per target; the figures are their medians.")
@click.option("--connections", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Keep-alive connections wrk holds open.")
@click.option("--warmup", type=click.IntRange(0, 60), default=2, show_default=True,
              help="Seconds of load on each target before the runs, not counted.")
@click.option("--only", multiple=True, metavar="TEXT",
              help="Measure only the targets whose name holds TEXT (and their references); repeatable.")
@click.option("--smoke", is_flag=True,
              help="Check that the harness works: 1 s per target, 1 run, no verdicts (CI).")
@output_option
def embed(seconds, runs, connections, warmup, only, smoke, output):
    """Embed traffic versus an empty Flask route under the same gunicorn settings (issue 7: ratio >= 0.8)."""
    from . import embed as measurement
    from . import results

    _require_wrk()
    postgres = _postgres_version()
    if smoke:
        seconds, runs, warmup = 1, 1, 0
    database_url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    click.echo(f"bench embed: {runs} run(s) of {seconds} s per target, {connections} connections, "
               f"PostgreSQL {postgres}")
    targets = measurement.select(only)
    if not targets:
        raise click.BadParameter(f"no target's name holds {' or '.join(only)}", param_hint="--only")
    section, outcomes = measurement.measure(
        database_url, postgres, seconds=seconds, runs=runs, connections=connections, warmup=warmup,
        log_dir=Path(current_app.instance_path) / "bench", smoke=smoke, targets=targets, echo=click.echo)
    results.write(section, output, output.with_suffix(".md"))
    for row in section.rows:
        ratio = f", ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        rps = f"{row['requests_per_s']:,.0f} requests/s" if row["requests_per_s"] else "–"
        click.echo(f"{row['target']}: {rps}{ratio} — {row['verdict']}")
    click.echo(f"wrote {output} and {output.with_suffix('.md')}")
    failed = [o.target.name for o in outcomes if o.failed or (o.missing and not smoke)]
    if failed:
        click.echo(f"failed or not measured: {', '.join(failed)}", err=True)
        sys.exit(1)


@bench.command("seed")
@click.option("--donations", type=click.IntRange(1, 50_000_000), default=1_000_000, show_default=True,
              help="Donations to write (about 30 % of them renewals of recurring gifts).")
@click.option("--supporters", type=click.IntRange(1, 10_000_000), default=200_000, show_default=True,
              help="Supporters to write.")
@click.option("--seed", "seed_", type=int, default=9, show_default=True,
              help="Random seed: the same seed on the same day writes the same data.")
@click.option("--force", is_flag=True,
              help="Empty the tables the seed fills (supporters, gifts, books, campaigns…) before writing.")
@click.option("--keep", is_flag=True,
              help="Do nothing when the database already holds exactly this many donations and supporters "
                   "(make bench: seed once, measure many times).")
def seed(donations, supporters, seed_, force, keep):
    """Fill an empty PostgreSQL database with a big publisher's data (COPY, not the ORM)."""
    from ..extensions import db
    from . import seed as seeding

    if keep and seeding.holds(db.engine, donations=donations, supporters=supporters):
        click.echo(f"bench seed: the database holds {donations:,} donations and {supporters:,} supporters "
                   "already; kept (--keep)")
        return
    try:
        seeding.check_database(db.engine, force=force)
    except seeding.SeedRefused as refused:
        raise click.ClickException(str(refused)) from None
    click.echo(f"bench seed: {donations:,} donations, {supporters:,} supporters, seed {seed_}")
    counts, seconds = seeding.seed(db.engine, donations=donations, supporters=supporters, seed=seed_,
                                   force=force, echo=click.echo)
    for table, rows in sorted(counts.items()):
        click.echo(f"  {table}: {rows:,}")
    with db.engine.connect() as conn:
        from sqlalchemy import text

        size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
    click.echo(f"seeded in {seconds:.1f} s; database size {size}")


@bench.command("queries")
@click.option("--requests", "requests_", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Requests per page or kind of search in each run (the p95 is over these).")
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs; the figures are the medians of the runs' p50 and p95.")
@click.option("--terms", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Distinct search terms per kind, drawn from the supporters and repeated.")
@click.option("--smoke", is_flag=True, help="Check that the harness works: 3 requests per kind, 1 run, no verdicts.")
@click.option("--no-explain", is_flag=True, help="Leave out EXPLAIN ANALYZE of each page's slowest query.")
@output_option
def queries(requests_, runs, terms, smoke, no_explain, output):
    """Staff dashboard and supporter search, p50 and p95 (issue 9: 300 ms and 50 ms at 1M donations)."""
    from . import queries as measurement
    from . import results

    postgres = _postgres_version()
    if smoke:
        requests_, runs, terms = 3, 1, 2
    click.echo(f"bench queries: {runs} run(s) of {requests_} requests per kind, {terms} terms per kind, "
               f"PostgreSQL {postgres}")
    try:
        section, kinds = measurement.measure(current_app._get_current_object(), postgres, requests=requests_,
                                             runs=runs, terms=terms, smoke=smoke, explain=not no_explain,
                                             echo=click.echo)
    except measurement.MeasurementFailed as failed:
        raise click.ClickException(str(failed)) from None
    results.write(section, output, output.with_suffix(".md"))
    for row in section.rows:
        click.echo(f"{row['target']}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms over {row['requests']} "
                   f"requests — {row['verdict']}")
    click.echo(f"wrote {output} and {output.with_suffix('.md')}")
    failures = [f"{kind.name}: {failure}" for kind in kinds for failure in kind.failures]
    if failures:
        click.echo("wrong answers:\n  " + "\n  ".join(failures[:20]), err=True)
        sys.exit(1)


@bench.command("outbox")
@click.option("--count", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="Receipts per run, sent by the app and by smtplib alike.")
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs of each side, alternating; the figures are their medians.")
@click.option("--smoke", is_flag=True, help="Check that the harness works: 200 receipts, 1 run, no verdict (CI).")
@output_option
def outbox(count, runs, smoke, output):
    """Receipts sent by the outbox's sender versus plain smtplib over one connection (issue 9: ratio >= 0.5)."""
    from . import outbox as measurement
    from . import results

    postgres = _postgres_version()
    if smoke:
        count, runs = 200, 1
    pending = measurement.foreign_pending()
    if pending:
        raise click.ClickException(
            f"the outbox holds {pending:,} pending emails the benchmark did not queue, and the sender would send "
            "them to the benchmark's SMTP server: send or delete them first (on a benchmark database)")
    click.echo(f"bench outbox: {runs} run(s) of {count:,} receipts each, PostgreSQL {postgres}")
    outcome = measurement.measure(count, runs, echo=click.echo)
    section = measurement.summarise(outcome, count=count, runs=runs, postgres_version=postgres, smoke=smoke)
    results.write(section, output, output.with_suffix(".md"))
    for row in section.rows:
        ratio = f", ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        rate = f"{row['messages_per_s']:,.0f} messages/s" if row["messages_per_s"] else "–"
        click.echo(f"{row['target']}: {rate}{ratio} — {row['verdict']}")
    click.echo(f"wrote {output} and {output.with_suffix('.md')}")
    if outcome.failure:
        sys.exit(1)


@bench.command("renewals")
@click.option("--events", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="invoice.paid events per run, one per seeded recurring gift.")
@click.option("--clients", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Concurrent clients (wrk threads, one keep-alive connection each).")
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs of the app and of the empty route, in turn; the figures are their medians.")
@click.option("--smoke", is_flag=True, help="Check that the harness works: 200 events, 1 run, no verdicts (CI).")
@output_option
def renewals(events, clients, runs, smoke, output):
    """Renewal day: signed invoice.paid events from concurrent clients, booked exactly once (issue 9)."""
    from ..extensions import db
    from . import renewals as measurement
    from . import results

    _require_wrk()
    postgres = _postgres_version()
    if smoke:
        events, runs = 200, 1
    if events < clients:
        raise click.BadParameter(f"needs at least one event per client ({clients})", param_hint="--events")
    click.echo(f"bench renewals: {runs} run(s) of {events:,} invoice.paid events from {clients} clients, "
               f"PostgreSQL {postgres}")
    try:
        section, outcome = measurement.measure(
            db.engine, current_app.config["SQLALCHEMY_DATABASE_URI"], postgres, events=events, clients=clients,
            runs=runs, log_dir=Path(current_app.instance_path) / "bench", smoke=smoke, echo=click.echo)
    finally:
        measurement.clean(db.engine)  # the gifts, events, donations and receipts of the runs: none is kept
    results.write(section, output, output.with_suffix(".md"))
    for row in section.rows:
        ratio = f", ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        books = f", all in the books after {row['in_books_s']:.2f} s" if row["in_books_s"] is not None else ""
        click.echo(f"{row['target']}: {row['events_per_s'] or 0:,.0f} events/s{ratio}{books} — {row['verdict']}")
    click.echo(f"wrote {output} and {output.with_suffix('.md')}")
    if outcome.failed:
        click.echo("correctness checks failed: " + "; ".join(outcome.problems), err=True)
        sys.exit(1)


@bench.command("export")
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs per side (app, COPY), alternating; the figures are their medians.")
@click.option("--smoke", is_flag=True,
              help="Check that the harness works on whatever the database holds: 1 run, no verdicts (CI).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where both files are written while compared (EXPORT_DIR of the app's side); "
                   "default: instance/bench/export. Emptied of CSV files afterwards.")
@output_option
def export(runs, smoke, work_dir, output):
    """Every donation to CSV by the app's export job versus PostgreSQL's COPY (issue 9: at most 2x, < 200 MB)."""
    from ..extensions import db
    from . import export as measurement
    from . import results

    postgres = _postgres_version()
    if smoke:
        runs = 1
    work_dir = work_dir or Path(current_app.instance_path) / "bench" / "export"
    click.echo(f"bench export: {runs} run(s) per side, PostgreSQL {postgres}")
    try:
        section, failures = measurement.measure(
            db.engine, current_app.config["SQLALCHEMY_DATABASE_URI"], postgres, runs=runs, work_dir=work_dir,
            smoke=smoke, echo=click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    results.write(section, output, output.with_suffix(".md"))
    for row in section.rows:
        ratio = f", ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        click.echo(f"{row['measure']}: app {row['app']}, COPY {row['reference']}{ratio}"
                   + (f" — {row['verdict']}" if row["verdict"] else ""))
    click.echo(f"wrote {output} and {output.with_suffix('.md')}")
    if failures:
        for failure in failures:
            click.echo(f"failed: {failure}", err=True)
        sys.exit(1)
