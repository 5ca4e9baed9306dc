"""flask --app app <command>: the operator's tools."""
from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone

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


def _moment(ctx, param, value):
    """YYYY-MM-DD or YYYY-MM-DDTHH:MM, in UTC unless it names its own offset; never in the future."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM, UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment > datetime.now(timezone.utc):
        raise click.BadParameter(f"{value} is in the future")
    return moment


def register_cli(app: Flask) -> None:
    outbox = AppGroup("outbox", help="The email outbox.")
    scheduler = AppGroup("scheduler", help="The job scheduler.")

    @outbox.command("send")
    def outbox_send():
        """Send every email that is due now."""
        from .mail.sender import send_due

        counts = send_due()
        click.echo(f"sent {counts['sent']}, retrying later {counts['retry']}, failed {counts['failed']}")

    @scheduler.command("run")
    def scheduler_run():
        """Run the scheduler in this process (never inside web workers). However many run, one leads and
        runs the jobs; the others stand by and take over when it stops or dies."""
        import signal
        import threading

        from .scheduler import registered_jobs, run_scheduler

        stop = threading.Event()
        # SIGTERM (systemd, docker stop) ends it as Ctrl-C does: running jobs finish, the lock is released.
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        click.echo(f"scheduler: {', '.join(job.id for job in registered_jobs(app.config))}")
        try:
            run_scheduler(app, stop)
        except KeyboardInterrupt:
            stop.set()

    from .reports.registry import kinds

    export_kinds = kinds()

    @app.cli.command("export", help="Exports for the accountant: " + "; ".join(
        f"{k.name}: {k.description}" for k in export_kinds.values()))
    @click.argument("kind", type=click.Choice(list(export_kinds)))
    @click.option("--from", "start", callback=_date, help="First day, YYYY-MM-DD (UTC).")
    @click.option("--to", "end", callback=_date, help="Last day, YYYY-MM-DD (UTC), included.")
    @click.option("--fiscal-year", type=click.IntRange(2000, 2100),
                  help="A whole fiscal year instead of --from/--to: the year it starts in (FISCAL_YEAR_START_MONTH).")
    @click.option("--payout", "payout_id", metavar="po_…",
                  help="The transactions of one Stripe payout instead of a period (only the exports that have them).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
    @click.option("--bom", is_flag=True, help="Start the CSV with a UTF-8 byte order mark, for Excel.")
    @click.option("--output", type=click.Path(dir_okay=False, writable=True), help="File to write; default stdout.")
    def export(kind, start, end, fiscal_year, payout_id, fmt, bom, output):
        from .extensions import db
        from .reports.registry import ExportParamError, make_params, write_csv, write_xlsx
        from .staff.auth import audit

        kind = export_kinds[kind]
        try:
            params = make_params(kind, start=start, end=end, fiscal_year=fiscal_year, payout_id=payout_id,
                                 fiscal_start_month=app.config["FISCAL_YEAR_START_MONTH"])
        except ExportParamError as exc:
            if exc.missing:
                raise click.UsageError(f"Missing option '--{exc.field}' ({exc})") from None
            raise click.BadParameter(str(exc), param_hint=f"--{exc.field}") from None
        if fmt == "xlsx" and not output:
            raise click.BadParameter("an XLSX file needs --output FILE", param_hint="--output")
        if bom and fmt != "csv":
            raise click.BadParameter("--bom is for CSV files only", param_hint="--bom")

        audit("export", kind.name, None, actor=None, email="cli", format=fmt, output=output or "stdout",
              **{key: value for key, value in params.to_json().items() if value})
        db.session.commit()
        if not output:  # CSV on stdout, perhaps piped on: no progress bar in the way
            if bom:
                sys.stdout.write("\ufeff")
            write_csv(kind, sys.stdout, params)
            return
        total = kind.count(params)
        with click.progressbar(length=total, label=f"{kind.name}: {total} rows", file=sys.stderr,
                               show_pos=True, show_percent=True) as bar:
            shown = 0

            def progress(done: int) -> None:
                nonlocal shown
                bar.update(done - shown)
                shown = done

            if fmt == "xlsx":
                count = write_xlsx(kind, output, params, progress)
            else:
                with open(output, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as out:
                    count = write_csv(kind, out, params, progress)
        click.echo(f"wrote {count} {kind.name} to {output}", err=True)

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

    stripe_group = AppGroup("stripe", help="Stripe.")

    @stripe_group.command("sync")
    @click.option("--since", callback=_moment,
                  help="From when: YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), at most 30 days back. "
                       "Default: as the scheduler's job, an hour before the newest event stored.")
    def stripe_sync(since):
        """Book the events Stripe made whose webhook never arrived, as the scheduler's job does."""
        from .payments.gateway import GatewayError
        from .payments.sync import sync_events

        if since is not None and since < datetime.now(timezone.utc) - timedelta(days=30):
            raise click.BadParameter("Stripe keeps events for 30 days; give a later date", param_hint="--since")
        try:
            counts = sync_events(int(since.timestamp()) if since else None)
        except GatewayError as exc:
            click.echo(f"error: Stripe could not be asked for its events ({exc.__cause__ or exc}); "
                       "nothing was booked", err=True)
            sys.exit(1)
        click.echo(f"listed {counts['listed']}, booked {counts['new']}, failed {counts['failed']}")
        if counts["failed"]:
            sys.exit(1)

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

    for group in (outbox, scheduler, sandbox, books, users, statements, stripe_group):
        app.cli.add_command(group)

    from .bench.cli import bench

    app.cli.add_command(bench)
