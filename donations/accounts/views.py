"""/account: supporters see their gifts and manage recurring ones from a signed link, without a password."""
from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext, ngettext

from ..checkout.operations import check_gift
from ..extensions import db, limiter
from ..i18n import LANGUAGE_NAMES, LANGUAGES, current_language, current_locale, format_day, use_locale
from ..ledger.models import Frequency, RecurringStatus
from ..money import Money, MoneyError
from ..payments.gateway import GatewayError
from ..reports import statements
from ..security import privacy
from . import operations
from .forms import ActionForm, CancelForm, ChangeForm, PauseForm, RequestLinkForm
from .tokens import InvalidToken

bp = Blueprint("accounts", __name__, url_prefix="/account")


def _email_key() -> str:
    return (request.form.get("email") or "").strip().lower()[:254] or "-"


@bp.route("", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
@limiter.limit("3 per hour", methods=["POST"], key_func=_email_key)
def request_link():
    form = RequestLinkForm()
    if form.validate_on_submit():
        operations.send_manage_link(form.email.data)
        db.session.commit()
        # The same answer whether or not the address is known, so the page reveals no supporter.
        return render_template("accounts/link_sent.html")
    return render_template("accounts/request_link.html", form=form), 400 if form.errors else 200


def _supporter(token: str):
    """The supporter of a manage link; the page is then in their saved language (unless it names one)."""
    try:
        supporter = operations.supporter_from_token(token)
    except InvalidToken as exc:
        abort(410 if exc.expired else 400,
              description=gettext("%(reason)s Ask for a new link on the account page.", reason=str(exc)))
    use_locale(supporter.locale)
    return supporter


@bp.get("/<token>")
def manage(token: str):
    supporter = _supporter(token)
    return render_template(
        "accounts/manage.html", token=token, supporter=supporter,
        donations=operations.history(supporter), gifts=operations.recurring_gifts(supporter),
        statements=statements.statements_of(supporter),
        change_form=ChangeForm(formdata=None, token=str(uuid.uuid4())), pause_form=PauseForm(formdata=None),
        cancel_form=CancelForm(formdata=None), action_form=ActionForm(formdata=None),
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        supporter_language=_shown_language(supporter),
    )


def _shown_language(supporter) -> str:
    """The language the select starts on: the saved one; else the page's own (a supporter reading this page in
    German who presses "Save language" keeps German), English where we have no catalogue of it."""
    saved = (supporter.locale or "").replace("-", "_").split("_")[0]
    language = saved or current_language()
    return language if language in LANGUAGES else "en"


@bp.get("/<token>/receipts/<int(max=2147483647):donation_id>")
def receipt(token: str, donation_id: int):
    donation = operations.own_donation(_supporter(token), donation_id)
    if donation is None or donation.receipt_number is None:
        abort(404)
    return render_template("accounts/receipt.html", donation=donation, token=token)


@bp.get("/<token>/statements/<int(max=2147483647):statement_id>.pdf")
def statement_pdf(token: str, statement_id: int):
    """The supporter's annual statement as issued; another supporter's is not found."""
    statement = statements.own_statement(_supporter(token), statement_id)
    if statement is None:
        abort(404)
    return Response(statements.render_statement_pdf(statement.content), mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{statements.pdf_filename(statement)}"',
        "Cache-Control": "private, no-store",  # personal data behind a link that must not linger in caches
    })


@bp.post("/<token>/gifts/<int(max=2147483647):recurring_id>/<action>")
def act(token: str, recurring_id: int, action: str):
    supporter = _supporter(token)
    recurring = operations.own_recurring(supporter, recurring_id)
    if recurring is None:
        abort(404)
    back = url_for("accounts.manage", token=token)
    try:
        match action:
            case "change":
                form = ChangeForm()
                if not form.validate_on_submit():
                    return _invalid(form, field=f"amount-{recurring.id}" if form.amount.errors else None)
                frequency = Frequency(form.frequency.data)
                amount = Money.from_major(form.amount.data, recurring.currency)
                check_gift(amount)
                operations.change(recurring, amount, frequency, form.token.data or str(uuid.uuid4()))
                message = gettext("From the next payment on, you give %(amount)s %(every)s.",
                                  amount=amount.format(current_locale()), every=frequency.every)
            case "pause":
                form = PauseForm()
                if not form.validate_on_submit():
                    return _invalid(form)
                operations.pause(recurring, int(form.months.data))
                months = int(form.months.data)
                message = ngettext("Paused for %(num)s month. It resumes by itself.",
                                   "Paused for %(num)s months. It resumes by itself.", months)
            case "resume":
                if not ActionForm().validate_on_submit():
                    abort(400, description=gettext("This form has expired. Please try again."))
                operations.resume(recurring)
                message = gettext("Your gift continues from the next payment.")
            case "cancel":
                form = CancelForm()
                if not form.validate_on_submit():
                    return _invalid(form)
                operations.cancel(recurring, at_period_end=form.when.data == "period_end")
                if recurring.ends_at_period_end:
                    message = gettext("Your gift ends on %(date)s; nothing more will be charged. We have sent you "
                                      "a confirmation.", date=format_day(recurring.current_period_end)) \
                        if recurring.current_period_end else gettext(
                            "Your gift ends at the end of the period you paid for; nothing more will be charged. "
                            "We have sent you a confirmation.")
                else:
                    message = gettext("Your gift is cancelled. We have sent you a confirmation.")
            case "card":
                if not ActionForm().validate_on_submit():
                    abort(400, description=gettext("This form has expired. Please try again."))
                public = current_app.config["PUBLIC_URL"]
                url = operations.card_update_url(recurring, public + url_for("accounts.manage", token=token),
                                                 public + url_for("accounts.card_returned", token=token))
                db.session.commit()
                return redirect(url, code=303)
            case _:
                abort(404)
    except (MoneyError, operations.NotAllowed, GatewayError) as exc:
        db.session.rollback()
        # The payment provider's messages are marked with N_ where raised, and translated here.
        flash(gettext(str(exc)) if isinstance(exc, GatewayError) else str(exc), "error")
        if isinstance(exc, MoneyError) and action == "change":  # the amount typed: the page marks that field
            return redirect(url_for("accounts.manage", token=token, invalid=f"amount-{recurring.id}"), code=303)
        return redirect(back, code=303)
    db.session.commit()
    flash(message, "info")
    return redirect(back, code=303)


@bp.get("/<token>/card-updated")
def card_returned(token: str):
    """Where the card-update page (Stripe's Billing Portal, or the sandbox's) sends the supporter once their card
    is saved (leaving it without a change goes back to the manage page): a word on what happened, then the page."""
    supporter = _supporter(token)
    gifts = [g for g in operations.recurring_gifts(supporter) if g.is_open]
    if any(g.status is RecurringStatus.PAST_DUE for g in gifts):
        flash(gettext("Your card is saved, but the failed payment has not gone through yet. We will try it again; "
                      "if it fails again, please check your card details."), "info")
    else:
        flash(gettext("Your card is updated; your next payments use it."), "info")
    return redirect(url_for("accounts.manage", token=token), code=303)


@bp.post("/<token>/mailing-consent/withdraw")
def withdraw_mailing_consent(token: str):
    supporter = _supporter(token)
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("This form has expired. Please try again."))
    if operations.withdraw_mailing_consent(supporter):
        db.session.commit()
        flash(gettext("Done: we will not email you about our work any more. Receipts still reach you."), "info")
    return redirect(url_for("accounts.manage", token=token), code=303)


@bp.post("/<token>/language")
def set_language(token: str):
    """The supporter's language: this page and every email from now on (receipts, reminders, statements)."""
    supporter = _supporter(token)
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("This form has expired. Please try again."))
    language = request.form.get("language")
    if language not in LANGUAGES:
        abort(400, description=gettext("Choose one of the languages offered."))
    operations.set_language(supporter, language)
    db.session.commit()
    use_locale(language)
    flash(gettext("Saved. We will write to you in this language from now on."), "info")
    return redirect(url_for("accounts.manage", token=token), code=303)


def _invalid(form, field: str | None = None):
    """Back to the page with the form's errors as a message; ``field``, the id of the input they concern, is
    marked there (aria-invalid, the message as its description, the focus)."""
    messages = [f"{getattr(form, name).label.text}: {errors[0]}" for name, errors in form.errors.items()
                if name != "csrf_token"] or [gettext("This form has expired. Please try again.")]
    flash(" ".join(messages), "error")
    return redirect(url_for("accounts.manage", token=request.view_args["token"], invalid=field), code=303)


# -- GDPR: access and erasure -------------------------------------------------------------------------

_PRIVATE = {"Cache-Control": "private, no-store"}  # personal data behind a link: never kept in caches


@bp.get("/<token>/data.json")
def data_json(token: str):
    """Everything we hold about the supporter (GDPR art. 15), as one JSON document."""
    supporter = _supporter(token)
    return Response(privacy.export_json(supporter), mimetype="application/json", headers={
        **_PRIVATE, "Content-Disposition": f'attachment; filename="{privacy.export_filename(supporter, "json")}"'})


@bp.get("/<token>/data.zip")
def data_zip(token: str):
    """The same, as one CSV file per section in a ZIP, for a spreadsheet."""
    supporter = _supporter(token)
    return Response(privacy.export_zip(supporter), mimetype="application/zip", headers={
        **_PRIVATE, "Content-Disposition": f'attachment; filename="{privacy.export_filename(supporter, "zip")}"'})


@bp.route("/<token>/erase", methods=["GET", "POST"])
def erase(token: str):
    """A page that says what erasure does, and its button; the POST erases (GDPR art. 17)."""
    supporter = _supporter(token)
    form = ActionForm()
    if request.method == "GET":
        return render_template("accounts/erase.html", token=token, supporter=supporter, form=form,
                               gifts=[g for g in operations.recurring_gifts(supporter) if g.is_open])
    if not form.validate_on_submit():
        abort(400, description=gettext("This form has expired. Please try again."))
    try:
        privacy.erase(supporter, requested_by="supporter")
    except privacy.ErasureRefused as exc:
        db.session.commit()  # recurring gifts Stripe already cancelled stay cancelled here too
        return render_template("accounts/erase.html", token=token, supporter=supporter, form=ActionForm(),
                               error=gettext(str(exc)), gifts=[g for g in operations.recurring_gifts(supporter)
                                                      if g.is_open]), 409
    db.session.commit()
    return render_template("accounts/erased.html")
