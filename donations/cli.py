"""flask --app app <command>: the operator's tools."""
from __future__ import annotations

import sys
from datetime import date

import click
from flask import Flask
from flask.cli import AppGroup


def _date(ctx, param, value):
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in the form YYYY-MM-DD") from None


def register_cli(app: Flask) -> None:
    outbox = AppGroup("outbox", help="The email outbox.")
    scheduler = AppGroup("scheduler", help="The job scheduler.")
    export = AppGroup("export", help="Exports for the accountant.")

    @outbox.command("send")
    def outbox_send():
        """Send every email that is due now."""
        from .mail.sender import send_due

        counts = send_due()
        click.echo(f"sent {counts['sent']}, retrying later {counts['retry']}, failed {counts['failed']}")

    @scheduler.command("run")
    def scheduler_run():
        """Run the scheduler in this process (never inside web workers)."""
        from .scheduler import build_scheduler

        sched = build_scheduler(app)
        click.echo(f"scheduler running: {', '.join(job.id for job in sched.get_jobs())}")
        try:
            sched.start()
        except (KeyboardInterrupt, SystemExit):
            pass

    @export.command("donations")
    @click.option("--from", "start", required=True, callback=_date, help="First day, YYYY-MM-DD (UTC).")
    @click.option("--to", "end", required=True, callback=_date, help="Last day, YYYY-MM-DD (UTC), included.")
    @click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True)
    @click.option("--output", type=click.Path(dir_okay=False, writable=True), help="File to write; default stdout.")
    def export_donations(start, end, fmt, output):
        """One row per donation paid in the period."""
        from .reports.exports import write_donations_csv

        if end < start:
            raise click.BadParameter("--to is before --from", param_hint="--to")
        if output:
            with open(output, "w", newline="", encoding="utf-8") as out:
                count = write_donations_csv(out, start, end)
            click.echo(f"wrote {count} donations to {output}", err=True)
        else:
            write_donations_csv(sys.stdout, start, end)

    for group in (outbox, scheduler, export):
        app.cli.add_command(group)
