"""The sandbox's hosted checkout page, standing in for Stripe Checkout when no Stripe key is set."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request

from ..money import Money
from . import sandbox_gateway as sandbox

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")


@bp.before_request
def only_in_sandbox_mode():
    if not isinstance(current_app.extensions["payment_gateway"], sandbox.SandboxGateway):
        abort(404)


@bp.route("/checkout/<session_id>", methods=["GET", "POST"])
def checkout(session_id: str):
    session = sandbox.get_session(session_id)
    if session is None:
        abort(404)
    error = None
    if request.method == "POST" and session["status"] == "open":
        try:
            result = sandbox.pay(session_id, request.form.get("card_number", "")[:40])
        except sandbox.SandboxError as exc:
            error = str(exc)
        else:
            if result.paid:
                return redirect(result.redirect_url, code=303)
            error = result.message
        session = sandbox.get_session(session_id)
    amount = Money(session["amount_total"], session["currency"].upper())
    return render_template("payments/sandbox_checkout.html", session=session, amount=amount, error=error), (
        402 if error else 200
    )
