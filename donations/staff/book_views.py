"""/staff/payouts: the books as Stripe paid them out, each payout beside what its lines add up to, and
closing a period."""
from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from ..extensions import db
from ..ledger.models import LedgerLine, Payout
from ..ledger.payouts import BooksError, close_books, closed_through
from . import auth
from .forms import ActionForm
from .views import bp

PAGE = 50


@bp.get("/payouts")
@auth.require("reports.read")
def payouts():
    """Newest payouts first; a payout whose lines do not add up to the bank amount is flagged."""
    rows = list(db.session.scalars(select(Payout).order_by(Payout.arrival_date.desc(), Payout.id.desc())
                                   .limit(PAGE)))
    mismatched = db.session.scalar(select(func.count()).select_from(Payout).where(
        Payout.lines_total.is_not(None), Payout.lines_total != Payout.amount))
    waiting = db.session.scalar(select(func.count()).select_from(Payout).where(
        Payout.lines_total.is_(None), Payout.status.in_(("paid", "failed"))))
    return render_template("staff/payouts.html", payouts=rows, mismatched=mismatched, waiting=waiting,
                           closed=closed_through(), form=ActionForm(),
                           may_close=current_user.role in auth.PERMISSIONS["books.close"])


@bp.get("/payouts/<string:payout_id>")
@auth.require("reports.read")
def payout(payout_id: str):
    item = db.session.scalars(select(Payout).where(Payout.stripe_payout_id == payout_id[:255])).one_or_none()
    if item is None:
        return render_template("staff/payout.html", payout=None, lines=[]), 404
    lines = list(db.session.scalars(select(LedgerLine).where(LedgerLine.payout_id == item.id)
                                    .order_by(LedgerLine.occurred_at, LedgerLine.id)))
    return render_template("staff/payout.html", payout=item, lines=lines)


@bp.post("/books/close")
@auth.require("books.close")
def close():
    """Close the books through a day; only forward, only days that have ended."""
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form expired; please try again.", "error")
        return redirect(url_for("staff.payouts"), 303)
    try:
        through = date.fromisoformat(request.form.get("through", ""))
    except ValueError:
        flash("Choose the last day to close, as YYYY-MM-DD.", "error")
        return redirect(url_for("staff.payouts"), 303)
    try:
        close_books(through, current_user.email)
    except BooksError as exc:
        flash(str(exc), "error")
        return redirect(url_for("staff.payouts"), 303)
    auth.audit("books.close", "closed_period", None, through=through.isoformat())
    db.session.commit()
    flash(f"The books are closed through {through.isoformat()}: lines that arrive later for those days "
          "are booked on the next open day, with a note.", "notice")
    return redirect(url_for("staff.payouts"), 303)
