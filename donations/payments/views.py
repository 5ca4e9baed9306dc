"""The sandbox's hosted pages, standing in for Stripe Checkout and the Billing Portal when no Stripe key is set."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request
from flask_babel import gettext

from ..i18n import use_locale

from ..ledger.models import Frequency
from ..money import Money
from . import sandbox_gateway as sandbox

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")



@bp.before_request
def only_in_sandbox_mode():
    if not sandbox.in_use():
        abort(404)


@bp.route("/checkout/<session_id>", methods=["GET", "POST"])
def checkout(session_id: str):
    session = sandbox.get_session(session_id)
    if session is None:
        abort(404)
    error, declined = None, False
    if request.method == "POST" and session["status"] == "open":
        try:
            result = sandbox.pay(session_id, request.form.get("card_number", "")[:40])
        except sandbox.SandboxError as exc:
            error = str(exc)
        else:
            if result.paid:
                return redirect(result.redirect_url, code=303)
            error, declined = result.message, True
        session = sandbox.get_session(session_id)
    # The reader's language, as Stripe Checkout speaks it (set here, after the sandbox's own webhook deliveries).
    use_locale(session.get("locale"))
    error = gettext(error) if error else None  # Stripe's English words, in the reader's language
    amount = Money(session["amount_total"], session["currency"].upper())
    interval = session.get("sandbox_interval")
    every = Frequency.from_interval(interval).every if interval else None
    return render_template("payments/sandbox_checkout.html", session=session, amount=amount, every=every,
                           error=error, declined=declined), 402 if error else 200


@bp.route("/portal/<portal_id>", methods=["GET", "POST"])
def portal(portal_id: str):
    """Stand-in for Stripe's Billing Portal: the supporter enters a new card."""
    error = None
    if request.method == "POST":
        try:
            return redirect(sandbox.update_card(portal_id, request.form.get("card_number", "")[:40]), code=303)
        except sandbox.SandboxError as exc:
            error = gettext(str(exc))
    return_url = sandbox.portal_return_url(portal_id)
    if return_url is None:
        abort(404)
    return render_template("payments/sandbox_portal.html", error=error, return_url=return_url), 400 if error else 200
