"""/staff: annual donation statements on the supporter page: issue one for a past fiscal year, send a
copy again, look at the PDF. Routes on the staff blueprint, kept apart from views.py."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, request, url_for
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..ledger.models import Supporter
from ..reports import statements as ops
from ..reports.models import AnnualStatement
from . import auth
from .forms import ActionForm
from .views import bp


def _fiscal_year(text: str | None) -> int:
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) == 4):
        raise ops.StatementError("Enter the fiscal year as four digits, such as 2026 (the year it starts in).")
    year = int(text)
    ops.check_fiscal_year(year)
    return year


@bp.post("/supporters/<int(max=2147483647):supporter_id>/statements")
@auth.require("statements.reissue")
def issue_statement(supporter_id: int):
    """Issue the supporter's statement for the chosen fiscal year, or send it again as a copy if it exists."""
    person = db.get_or_404(Supporter, supporter_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    back = redirect(url_for("staff.supporter", supporter_id=supporter_id, _anchor="statements"), code=303)
    try:
        year = _fiscal_year(request.form.get("fiscal_year"))
    except ops.StatementError as exc:
        flash(str(exc), "error")
        return back
    existing = ops.statement_for(person.id, year)
    if existing is not None:
        copy = ops.reissue_statement(existing)
        auth.audit("statement.reissue", "annual_statement", existing.id, supporter=person.id, fiscal_year=year,
                   number=existing.number, copy=copy, to=person.email)
        db.session.commit()
        flash(f"Statement {existing.number} is on its way to {person.email} again, marked as a copy.", "info")
        return back
    try:
        statement = ops.issue_statement(person, year)
    except (ops.AlreadyIssued, IntegrityError):  # the job issued it a moment ago
        db.session.rollback()
        flash(f"The statement for {ops.fiscal_year_label(year)} was issued a moment ago. Try again to send a copy.",
              "error")
        return back
    if statement is None:
        db.session.rollback()
        flash(f"Nothing was given (net of refunds) in fiscal year {ops.fiscal_year_label(year)}: no statement.",
              "error")
        return back
    auth.audit("statement.issue", "annual_statement", statement.id, supporter=person.id, fiscal_year=year,
               number=statement.number, to=person.email)
    db.session.commit()
    flash(f"Statement {statement.number} is issued and on its way to {person.email}.", "info")
    return back


@bp.get("/supporters/<int(max=2147483647):supporter_id>/statements/<int(max=2147483647):statement_id>.pdf")
@auth.require("supporters.read")
def statement_pdf(supporter_id: int, statement_id: int):
    """The statement as issued (no copy mark: looking at it sends nothing)."""
    statement = db.get_or_404(AnnualStatement, statement_id)
    if statement.supporter_id != supporter_id:
        abort(404)
    return Response(ops.render_statement_pdf(statement.content), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{ops.pdf_filename(statement)}"'})
