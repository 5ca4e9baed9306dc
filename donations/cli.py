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
    @click.option("--from", "start", callback=_date, help="First day, YYYY-MM-DD (UTC).")
    @click.option("--to", "end", callback=_date, help="Last day, YYYY-MM-DD (UTC), included.")
    @click.option("--fiscal-year", type=click.IntRange(2000, 2100),
                  help="A whole fiscal year instead of --from/--to: the year it starts in (FISCAL_YEAR_START_MONTH).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
    @click.option("--bom", is_flag=True, help="Start the CSV with a UTF-8 byte order mark, for Excel.")
    @click.option("--output", type=click.Path(dir_okay=False, writable=True), help="File to write; default stdout.")
    def export_donations(start, end, fiscal_year, fmt, bom, output):
        """One row per donation paid in the period."""
        from .extensions import db
        from .reports.exports import fiscal_year_days, write_donations_csv, write_donations_xlsx
        from .staff.auth import audit

        if fiscal_year is not None:
            if start or end:
                raise click.BadParameter("give --fiscal-year or --from/--to, not both", param_hint="--fiscal-year")
            start, end = fiscal_year_days(fiscal_year, app.config["FISCAL_YEAR_START_MONTH"])
        if start is None:
            raise click.UsageError("Missing option '--from' (or give --fiscal-year)")
        if end is None:
            raise click.UsageError("Missing option '--to' (or give --fiscal-year)")
        if end < start:
            raise click.BadParameter("--to is before --from", param_hint="--to")
        if fmt == "xlsx" and not output:
            raise click.BadParameter("an XLSX file needs --output FILE", param_hint="--output")

        audit("export", "donations", None, actor=None, email="cli", start=str(start), end=str(end),
              output=output or "stdout")
        db.session.commit()
        if fmt == "xlsx":
            count = write_donations_xlsx(output, start, end)
            click.echo(f"wrote {count} donations to {output}", err=True)
        elif output:
            with open(output, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as out:
                count = write_donations_csv(out, start, end)
            click.echo(f"wrote {count} donations to {output}", err=True)
        else:
            if bom:
                sys.stdout.write("\ufeff")
            write_donations_csv(sys.stdout, start, end)

    sandbox = AppGroup("sandbox", help="The offline payment sandbox.")

    @sandbox.command("advance")
    @click.option("--days", type=click.IntRange(1, 3660), required=True, help="How far to move the sandbox clock.")
    def sandbox_advance(days):
        """Move the sandbox's clock and play every renewal that falls due, as Stripe's test clocks do."""
        from .payments import sandbox_gateway

        if not sandbox_gateway.in_use():
            raise click.UsageError("the sandbox is not in use (STRIPE_SECRET_KEY is set)")
        counts = sandbox_gateway.advance(days)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no renewals were due"
        click.echo(f"advanced {days} days: {summary}")

    @sandbox.command("payout")
    def sandbox_payout():
        """Pay the sandbox balance out, one payout per currency, as Stripe's automatic payouts do."""
        from .payments import sandbox_gateway

        if not sandbox_gateway.in_use():
            raise click.UsageError("the sandbox is not in use (STRIPE_SECRET_KEY is set)")
        made = sandbox_gateway.payout()
        for payout in made:
            click.echo(f"{payout['id']}: {payout['amount']} {payout['currency'].upper()} paid")
        if not made:
            click.echo("nothing to pay out")

    books = AppGroup("books", help="The books: Stripe's balance, payouts, closed periods.")

    @books.command("settle")
    def books_settle():
        """Fetch what Stripe has settled now (fees, refunds, payouts' lines) instead of waiting for the job."""
        from .ledger.jobs import settle_books

        counts = settle_books()
        click.echo(", ".join(f"{name} {count}" for name, count in counts.items()))

    @books.command("close")
    @click.option("--through", callback=_date, required=True, help="Last day to close, YYYY-MM-DD (UTC).")
    def books_close(through):
        """Close the books through a day: later lines for it go to the next open day, with a note."""
        from .extensions import db
        from .ledger.payouts import BooksError, close_books
        from .staff.auth import audit

        try:
            close_books(through, "cli")
        except BooksError as exc:
            raise click.BadParameter(str(exc), param_hint="--through") from None
        audit("books.close", "closed_period", None, actor=None, email="cli", through=str(through))
        db.session.commit()
        click.echo(f"the books are closed through {through.isoformat()}")

    users = AppGroup("users", help="Staff users.")

    @users.command("create")
    @click.option("--email", required=True, help="The staff member's email address (their sign-in name).")
    @click.option("--role", type=click.Choice(["admin", "staff", "accountant"]), required=True)
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    def users_create(email, role, password_stdin):
        """Create a staff user; asks for the password unless --password-stdin is given."""
        from .checkout.validation import clean_email
        from .extensions import db
        from .staff.auth import audit, create_user, find_user, password_problem
        from .staff.models import Role

        try:
            email = clean_email(email)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--email") from None
        if find_user(email):
            raise click.ClickException(f"a staff user {email} exists already")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        problem = password_problem(password)
        if problem:
            raise click.ClickException(f"password: {problem}")
        user = create_user(email, Role(role), password)
        audit("user.create", "staff_user", user.id, actor=None, email="cli", role=role, created=email)
        db.session.commit()
        click.echo(f"created {role} {email}")

    @app.cli.command("seed-demo")
    def seed_demo():
        """Development only: a demo admin, and a year of made-up gifts for the dashboard (once)."""
        from . import demo
        from .extensions import db
        from .staff.auth import create_user, find_user
        from .staff.models import Role

        if app.config["DONATIONS_ENV"] == "production":
            raise click.ClickException("no demo content in production")
        email, password = "admin@example.org", "demo-admin-password"
        if find_user(email) is None:
            create_user(email, Role.ADMIN, password)
        added = demo.seed()
        db.session.commit()
        click.echo(f"demo: {added} gifts added" if added else "demo: the ledger has gifts already")
        click.echo(f"Staff sign-in: {app.config['PUBLIC_URL']}/staff/login  {email} / {password}")

    statements = AppGroup("statements", help="Annual donation statements.")

    @statements.command("send")
    @click.option("--fiscal-year", required=True, type=int,
                  help="The fiscal year, by the year it starts in (FISCAL_YEAR_START_MONTH); it must have ended.")
    def statements_send(fiscal_year):
        """Issue and email every missing statement of a fiscal year now (as the daily job does when due)."""
        from .reports.statements import StatementError, check_fiscal_year, issue_statements

        try:
            check_fiscal_year(fiscal_year)
        except StatementError as exc:
            raise click.BadParameter(str(exc), param_hint="--fiscal-year") from None
        counts = issue_statements(fiscal_year)
        click.echo(f"fiscal year {fiscal_year}: issued {counts['issued']}, already issued {counts['already']}, "
                   f"failed {counts['failed']}" + (" (see the log; run again to retry)" if counts["failed"] else ""))
        if counts["failed"]:
            sys.exit(1)

    for group in (outbox, scheduler, export, sandbox, books, users, statements):
        app.cli.add_command(group)
