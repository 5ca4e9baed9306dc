"""The donation page, the thank-you page and the JSON API for publishers' own front ends."""
from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, session
from flask_babel import force_locale, gettext, lazy_gettext as _l

from ..campaigns import operations as campaigns
from ..db import now_utc
from ..extensions import csrf, db
from ..money import Money, MoneyError
from ..payments.gateway import GatewayError
from ..security import antifraud, captcha
from ..i18n import current_locale, use_locale
from ..web import request_locale
from . import operations
from .forms import DonationForm
from .openapi import openapi_document

bp = Blueprint("checkout", __name__)
#: Namespace of attempt ids derived from API clients' Idempotency-Keys.
API_KEYS = uuid.UUID("6d1c2f0e-4b1a-4f7e-9a53-2f1e0c9b7d41")
#: All a filled-in honeypot learns: nothing that tells a bot which field gave it away.
HONEYPOT_REFUSED = _l("Your donation could not be started. Please reload the page and try again.")


@bp.route("/donate", methods=["GET", "POST"])
def donate():
    attempt = _returning_attempt()
    if attempt is not None:
        use_locale(attempt.locale)  # back from a cancelled checkout: in the language the reader gave in
    form = DonationForm()  # after the locale is settled: the form's labels are in the page's language
    if request.method == "GET":
        _prefill(form, attempt)
    campaign = campaigns.get_active(form.campaign.data or "") or campaigns.get_active_or_404(campaigns.DEFAULT_SLUG)
    ask = _ask(campaign, form.chosen_variant(), form.currency.data)
    error, status, headers = None, None, {}
    stamp_passed = False
    if request.method == "POST":
        # The defences come before the form is even read, and long before any call to the payment provider.
        breach = antifraud.check_checkout_limits(request.form.get("email"))
        if breach is not None:
            error, status, headers = breach.message, 429, {"Retry-After": str(breach.retry_after)}
        elif form.homepage.data:
            current_app.logger.info("donation form refused: honeypot filled")
            return render_template("error.html", code=400, message=str(HONEYPOT_REFUSED)), 400
        else:
            try:
                antifraud.check_fill_time(form.started.data)
                stamp_passed = True
            except antifraud.FormRefused as exc:
                error, status = str(exc), 400
    if status is None and form.validate_on_submit():
        try:
            if antifraud.captcha_required():
                chosen = captcha.provider()
                captcha.verify(request.form.get(chosen.response_field) if chosen else None)
            attempt = operations.start_donation(form.to_request(request_locale()), form.token.data)
        except captcha.CaptchaFailed as exc:
            error, status = gettext(str(exc)), 400
        except MoneyError as exc:
            form.amount.errors = [str(exc)]
        except GatewayError as exc:
            db.session.commit()  # keeps the attempt and its count of failed tries for the retry
            error, status = gettext(str(exc)), 503  # marked with N_ where raised
        else:
            db.session.commit()
            # This browser's own checkouts, so that coming back from one counts its form as filled in already.
            session["attempts"] = [*session.get("attempts", [])[-(OWN_ATTEMPTS - 1):], attempt.id]
            return redirect(attempt.checkout_url, code=303)
    status = status or (400 if form.errors else 200)
    if attempt is not None and _own_open_attempt(attempt):
        # Back from a cancelled checkout this browser opened a moment ago: the reader filled in this form once
        # already, so its clock counts as passed and pressing Donate again at once is no bot's speed.
        form.started.data = antifraud.form_stamp(passed=True)
    elif not (stamp_passed and current_app.config["FORM_MIN_SECONDS"]):
        # Every new form starts its own clock; a form shown again after a slip (an error in a field, the CAPTCHA)
        # keeps the clock that already passed, so correcting one field at once is no bot's speed.
        form.started.data = antifraud.form_stamp()
    # Only the reader's choices travel in the frequency and currency links, never url_for's own options.
    choice_args = {k: request.args[k][:2000] for k in ("campaign", "variant", "amount", "currency", "frequency",
                                                       "article_url") if isinstance(request.args.get(k), str)}
    choice_args["locale"] = current_locale()  # the page's language, also when it came from the attempt
    widget = captcha.provider() if antifraud.captcha_required() else None
    return render_template("checkout/donate.html", form=form, ask=ask, error=error, choice_args=choice_args,
                           captcha=widget), status, headers


def _ask(campaign, variant, currency: str | None) -> dict:
    """What the donation page shows of the ask the reader came from: its copy and preset amounts. The
    ``variant`` (the campaign's active variant from the link, or None) is the one the reader saw; the
    form carries its key through to the attempt."""
    return campaigns.ask_view(campaign, request_locale(), currency, variant=variant)


#: How many of its latest checkouts a browser's session remembers (see _own_open_attempt).
OWN_ATTEMPTS = 5


def _own_open_attempt(attempt: operations.CheckoutAttempt) -> bool:
    """Whether ``attempt`` is one this browser opened from the donation form, still open and from the last day:
    only then does its refilled form skip the fill-time clock. Anyone else's attempt id (or an API attempt, or
    an old or finished one) gets a form with a fresh clock, like any new form."""
    return (attempt.id in session.get("attempts", []) and attempt.status is operations.AttemptStatus.OPEN
            and attempt.created_at > now_utc() - timedelta(seconds=antifraud.FORM_MAX_AGE_SECONDS))


def _returning_attempt() -> operations.CheckoutAttempt | None:
    """The attempt a reader comes back from (a cancelled checkout sends them to ``/donate?attempt=…``)."""
    if request.method != "GET" or not isinstance(request.args.get("attempt"), str):
        return None
    return db.session.get(operations.CheckoutAttempt, request.args["attempt"])


def _prefill(form: DonationForm, attempt: operations.CheckoutAttempt | None) -> None:
    """Carry the reader's choice over from the ask (or from a cancelled checkout) into the form."""
    args = request.args
    if attempt is not None:
        gift = Money(attempt.amount - attempt.covered_fee, attempt.currency)
        form.campaign.data = attempt.campaign.slug
        form.currency.data = attempt.currency
        form.frequency.data = attempt.frequency.value
        form.amount.data = gift.major_str()
        form.email.data = attempt.email
        form.name.data = attempt.name
        form.cover_fees.data = attempt.covered_fee > 0
        form.mailing_consent.data = attempt.mailing_consent_source is not None
        form.article_url.data = attempt.article_url
        form.variant.data = attempt.variant.key if attempt.variant else None
        return
    for name in ("campaign", "variant", "currency", "frequency", "article_url"):
        if isinstance(args.get(name), str):
            getattr(form, name).data = args[name][:2000]
    if isinstance(args.get("amount"), str):
        form.amount.data = args["amount"][:20]


@bp.get("/thanks")
def thanks():
    attempt = operations.attempt_by_session(request.args.get("session_id", ""))
    if attempt is None:
        abort(404)
    use_locale(attempt.locale)
    return render_template("checkout/thanks.html", attempt=attempt, donation=operations.first_donation(attempt))


@bp.post("/api/v1/checkout-sessions")
@csrf.exempt  # a JSON API called cross-origin; CORS and the JSON content type keep browsers from forging it
def api_create_checkout_session():
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # "[[[[…" nested deeper than the JSON parser goes
        payload = None
    breach = antifraud.check_checkout_limits(payload.get("email") if isinstance(payload, dict) else None)
    if breach is not None:
        with force_locale("en"):  # the API's messages are English, whatever the client's language
            message = breach.message
        return jsonify(error=message, retry_after=breach.retry_after), 429, \
            {"Retry-After": str(breach.retry_after)}
    donation_request, errors = operations.parse_api_request(payload, request_locale())
    if errors:
        return jsonify(errors=errors), 400
    if antifraud.captcha_required():
        try:
            captcha.verify(payload.get("captcha_token"))
        except captcha.CaptchaFailed as exc:
            return jsonify(errors={"captcha_token": str(exc)}), 400
    key = request.headers.get("Idempotency-Key")
    try:
        # The attempt id is derived from the client's key, never the key itself: an attempt id opens
        # the reader's prefilled form after a cancelled checkout, so it must not be guessable from outside.
        key = str(uuid.uuid5(API_KEYS, str(uuid.UUID(key)))) if key else None
    except ValueError:
        return jsonify(errors={"Idempotency-Key": "Must be a UUID."}), 400
    try:
        attempt = operations.start_donation(donation_request, key)
    except MoneyError as exc:
        return jsonify(errors={"amount": str(exc)}), 400
    except GatewayError as exc:
        db.session.commit()  # keeps the attempt and its count of failed tries for the retry
        return jsonify(error=str(exc)), 503
    db.session.commit()
    return jsonify(id=attempt.checkout_session_id, url=attempt.checkout_url), 201


@bp.get("/api/v1/openapi.json")
def openapi():
    return jsonify(openapi_document(current_app.config))
