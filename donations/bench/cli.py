"""flask --app app bench <measurement>: the benchmark suite's commands (issue 9 adds seed, renewals, export…)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from .results import ROOT

bench = AppGroup("bench", help="Benchmarks: the app side by side with a reference (make bench).")


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
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=ROOT / "docs" / "benchmarks.json", show_default="docs/benchmarks.json",
              help="The JSON results file; the Markdown page is written beside it (.md).")
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
def seed(donations, supporters, seed_, force):
    """Fill an empty PostgreSQL database with a big publisher's data (COPY, not the ORM)."""
    from ..extensions import db
    from . import seed as seeding

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


@bench.command("export")
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Runs per side (app, COPY), alternating; the figures are their medians.")
@click.option("--smoke", is_flag=True,
              help="Check that the harness works on whatever the database holds: 1 run, no verdicts (CI).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where both files are written while compared (EXPORT_DIR of the app's side); "
                   "default: instance/bench/export. Emptied of CSV files afterwards.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=ROOT / "docs" / "benchmarks.json", show_default="docs/benchmarks.json",
              help="The JSON results file; the Markdown page is written beside it (.md).")
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
