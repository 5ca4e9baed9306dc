"""/staff: sign-in, dashboard, supporters, donations, refunds, campaigns, outbox, audit, users."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from ..accounts.operations import NotAllowed, cancel
from ..campaigns.experiments import allocation, variant_stats
from ..campaigns.goals import progress
from ..campaigns.models import Allocation, Campaign, CampaignVariant, GoalPeriod, Placement
from ..campaigns.operations import DEFAULT_SLUG, ask_view
from ..campaigns.views import embed_script_url
from ..db import now_utc
from ..extensions import db, limiter
from ..ledger.models import Donation, Frequency, RecurringDonation, Supporter
from ..mail.models import EmailStatus, OutboxEmail
from ..money import Money
from ..payments.gateway import GatewayError
from ..reports import operations as export_ops
from ..reports.models import ExportJob, ExportStatus
from ..reports.registry import ExportParamError, csv_chunks, write_xlsx
from ..reports.registry import kinds as export_kinds
from ..security import privacy
from ..security.redirects import safe_next
from ..web import id_arg
from . import auth, charts
from . import operations as ops
from .forms import (
    ActionForm,
    CampaignCreateForm,
    CampaignForm,
    CampaignSettingsForm,
    ExportForm,
    LoginForm,
    RefundForm,
    TranslationForm,
    UserChangeForm,
    UserForm,
    VariantForm,
)
from .models import AuditEntry, Role, StaffUser

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.after_request
def no_store(response):
    # Staff pages hold personal data: never cached by the browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_email_key() -> str:
    return (request.form.get("email") or "").strip().lower()[:254] or "-"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per 15 minutes", methods=["POST"])
@limiter.limit("5 per 15 minutes", methods=["POST"], key_func=_login_email_key,
               deduct_when=lambda response: response.status_code != 303)  # only failed attempts count
def login():
    form = LoginForm()
    # Where Flask-Login sent the user from: a staff page of ours, never another site (open redirect).
    next_path = safe_next(request.args.get("next"), path_prefix="/staff/")
    if form.validate_on_submit():
        user = auth.find_user(form.email.data)
        if auth.check_password(user, form.password.data):
            auth.start_session(user)
            auth.audit("sign_in", "staff_user", user.id, actor=user)
            db.session.commit()
            return redirect(next_path or url_for("staff.dashboard"), code=303)
        auth.audit("sign_in", "staff_user", user.id if user else None, outcome="denied", actor=user,
                   email=form.email.data.strip().lower()[:254])
        db.session.commit()
        form.password.errors = ["Email or password is not right."]  # the same words whatever was wrong
    return render_template("staff/login.html", form=form, next_path=next_path), 401 if form.errors else 200


@bp.post("/logout")
def logout():
    if not ActionForm().validate_on_submit():
        abort(400)
    if current_user.is_authenticated:
        auth.audit("sign_out", "staff_user", current_user.id)
    auth.end_session()
    db.session.commit()
    flash("You are signed out.", "info")
    return redirect(url_for("staff.login"), code=303)


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


def _fmt(currency: str):
    return lambda minor: Money(minor, currency).format()


@bp.get("/")
@auth.require("dashboard")
def dashboard():
    today = date.today()
    date_from, date_to = _date_arg("from"), _date_arg("to")
    periods = ops.periods(today, date_from, date_to)
    if len(periods) == 4:  # the chosen range
        chart_period = periods[-1]
    else:
        first_month = date.fromisoformat(ops.month_ends(today)[0][0] + "-01")
        chart_period = ops.Period("last 12 months", ops.utc_day(first_month), ops.utc_day(today + timedelta(days=1)))
    snapshot = ops.latest_snapshot(today)  # the money raised before its day, exact; None: all from the donations
    unit, raised = ops.raised_series(chart_period.start, chart_period.end, snapshot)
    history = ops.recurring_history(today)
    gained_lost = ops.supporters_gained_and_lost(today)
    chart_list = [charts.bars(f"Money raised per {unit}, {currency} ({chart_period.label})", points, _fmt(currency))
                  for currency, points in raised.items()]
    chart_list += [charts.bars(f"Monthly recurring revenue, {currency}", points, _fmt(currency))
                   for currency, points in history["mrr"].items()]
    chart_list.append(charts.bars("Active recurring supporters", history["supporters"]))
    chart_list.append(charts.bars("New versus lost supporters", [(m, g) for m, g, _ in gained_lost],
                                  second=[(m, lost) for m, _, lost in gained_lost], legend=("new", "lost")))
    return render_template(
        "staff/dashboard.html", periods=[(p, ops.figures(p, snapshot)) for p in periods],
        recurring=ops.recurring_now(), charts=chart_list,
        top_campaigns=ops.top(chart_period.start, chart_period.end, "campaign", snapshot=snapshot),
        top_articles=ops.top(chart_period.start, chart_period.end, "article", snapshot=snapshot),
        chart_period=chart_period,
        date_from=date_from, date_to=date_to, Money=Money,
    )


def _filters() -> ops.Filters:
    args = request.args
    campaign = args.get("campaign", "")
    before = args.get("before", "")
    return ops.Filters(
        q=args.get("q", "")[:200], kind=args.get("kind", "") if args.get("kind") in ops.SUPPORTER_KINDS else "",
        campaign_id=id_arg(campaign),
        currency=args.get("currency", "") if args.get("currency") in current_app.config["CURRENCIES"] else "",
        date_from=_date_arg("from"), date_to=_date_arg("to"), before=id_arg(before),
    )


def _campaigns() -> list[Campaign]:
    return list(db.session.scalars(select(Campaign).order_by(Campaign.name)))


@bp.get("/supporters")
@auth.require("supporters.read")
def supporters():
    filters = _filters()
    rows, next_before = ops.search_supporters(filters)
    return render_template("staff/supporters.html", rows=rows, next_before=next_before, filters=filters,
                           kinds=ops.SUPPORTER_KINDS, campaigns=_campaigns())


@bp.get("/supporters/<int(max=2147483647):supporter_id>")
@auth.require("supporters.read")
def supporter(supporter_id: int):
    return _supporter_page(db.get_or_404(Supporter, supporter_id))


def _supporter_page(person: Supporter, status: int = 200):
    return render_template("staff/supporter.html", supporter=person, action_form=ActionForm(),
                           statement_roles=auth.PERMISSIONS["statements.reissue"],
                           privacy_roles=auth.PERMISSIONS["supporters.privacy"], erased=privacy.is_erased(person),
                           **ops.supporter_timeline(person)), status


@bp.get("/supporters/<int(max=2147483647):supporter_id>/data.json")
@auth.require("supporters.privacy")
def supporter_data_json(supporter_id: int):
    """Everything held about the supporter (GDPR art. 15), for staff answering a request; audited."""
    return _supporter_data(supporter_id, "json")


@bp.get("/supporters/<int(max=2147483647):supporter_id>/data.zip")
@auth.require("supporters.privacy")
def supporter_data_zip(supporter_id: int):
    """The same as CSV files in a ZIP."""
    return _supporter_data(supporter_id, "zip")


def _supporter_data(supporter_id: int, fmt: str):
    person = db.get_or_404(Supporter, supporter_id)
    body = privacy.export_json(person) if fmt == "json" else privacy.export_zip(person)
    auth.audit("supporter.data_export", "supporter", person.id, format=fmt)
    db.session.commit()
    return Response(body, mimetype="application/json" if fmt == "json" else "application/zip", headers={
        "Content-Disposition": f'attachment; filename="{privacy.export_filename(person, fmt)}"'})


@bp.post("/supporters/<int(max=2147483647):supporter_id>/erase")
@auth.require("supporters.privacy")
def erase_supporter(supporter_id: int):
    """Erase the supporter's personal data (GDPR art. 17) with a reason; audited. 409 when Stripe refuses."""
    person = db.get_or_404(Supporter, supporter_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    reason = (request.form.get("reason") or "").strip()
    if not reason or len(reason) > 1000:
        flash("Give the reason for the erasure (at most 1000 characters), e.g. the request's date and channel.",
              "error")
        return _supporter_page(person, 400)
    try:
        erasure = privacy.erase(person, requested_by="staff", staff_user=current_user, reason=reason)
    except privacy.ErasureRefused as exc:
        # Nothing was pseudonymised; recurring gifts Stripe already cancelled stay cancelled here too.
        auth.audit("supporter.erase", "supporter", person.id, outcome="failed", error=str(exc)[:300])
        db.session.commit()
        flash(f"Not erased: {exc}", "error")
        return _supporter_page(person, 409)
    auth.audit("supporter.erase", "supporter", person.id, reason=erasure.reason)  # the reason, redacted
    db.session.commit()
    flash("The supporter's personal data is erased; their gifts stay in the books.", "info")
    return redirect(url_for("staff.supporter", supporter_id=supporter_id), code=303)


@bp.post("/supporters/<int(max=2147483647):supporter_id>/donations/<int(max=2147483647):donation_id>/resend")
@auth.require("supporters.write")
def resend_receipt(supporter_id: int, donation_id: int):
    donation = db.get_or_404(Donation, donation_id)
    if donation.supporter_id != supporter_id or not ActionForm().validate_on_submit():
        abort(404 if donation.supporter_id != supporter_id else 400)
    try:
        ops.resend_receipt(donation)
    except ops.StaffActionError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"Receipt {donation.receipt_number} is on its way to {donation.supporter.email}.", "info")
    return redirect(url_for("staff.supporter", supporter_id=supporter_id), code=303)


@bp.post("/supporters/<int(max=2147483647):supporter_id>/recurring/<int(max=2147483647):recurring_id>/cancel")
@auth.require("supporters.write")
def cancel_recurring(supporter_id: int, recurring_id: int):
    recurring = db.get_or_404(RecurringDonation, recurring_id)
    if recurring.supporter_id != supporter_id or not ActionForm().validate_on_submit():
        abort(404 if recurring.supporter_id != supporter_id else 400)
    try:
        cancel(recurring, at_period_end=request.form.get("when") != "now")
    except (NotAllowed, GatewayError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        auth.audit("recurring.cancel", "recurring_donation", recurring.id, when=request.form.get("when", "period_end"))
        db.session.commit()
        flash("The recurring gift ends at the end of the period already paid for; nothing more will be charged. "
              "The supporter gets a confirmation." if recurring.ends_at_period_end else
              "The recurring gift is cancelled; the supporter gets a confirmation.", "info")
    return redirect(url_for("staff.supporter", supporter_id=supporter_id), code=303)


@bp.get("/donations")
@auth.require("donations.read")
def donations():
    filters = _filters()
    rows, next_before = ops.list_donations(filters)
    return render_template("staff/donations.html", rows=rows, next_before=next_before, filters=filters,
                           kinds=ops.SUPPORTER_KINDS, campaigns=_campaigns())


@bp.get("/donations/<int(max=2147483647):donation_id>")
@auth.require("donations.read")
def donation(donation_id: int):
    gift = db.get_or_404(Donation, donation_id)
    can_refund = current_user.role in auth.PERMISSIONS["donations.refund"]
    return render_template("staff/donation.html", donation=gift, refund_form=RefundForm(), can_refund=can_refund,
                           Money=Money, left=Money(gift.amount - gift.amount_refunded, gift.currency))


@bp.post("/donations/<int(max=2147483647):donation_id>/refund")
@auth.require("donations.refund")
def refund(donation_id: int):
    gift = db.get_or_404(Donation, donation_id)
    form = RefundForm()
    back = redirect(url_for("staff.donation", donation_id=donation_id), code=303)
    if not form.validate_on_submit():
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
        return back
    try:
        amount = ops.parse_refund_amount(form.amount.data, gift)
        if form.confirm.data != "1":  # the first step: checked, then shown back to be confirmed; nothing sent
            ops.check_refund(gift, amount)
            return render_template("staff/refund_confirm.html", donation=gift, form=form, amount=amount)
        ops.refund(gift, amount, form.token.data)
    except (ops.StaffActionError, GatewayError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return back
    db.session.commit()
    flash("Refund requested. It shows here as soon as Stripe confirms it.", "info")
    return back


@bp.get("/campaigns")
@auth.require("campaigns.read")
def campaigns():
    return _campaigns_page(CampaignCreateForm(formdata=None))


@bp.post("/campaigns")
@auth.require("campaigns.write")
def create_campaign():
    """A new campaign (slug, name, language); it starts inactive, with the default campaign's copy."""
    form = CampaignCreateForm()
    if form.validate_on_submit():
        try:
            item = ops.create_campaign(slug=form.slug.data, name=form.name.data.strip(), language=form.language.data)
        except ops.StaffActionError as exc:
            form.slug.errors = [str(exc)]
        else:
            db.session.commit()
            flash("Campaign created. It shows to readers once you make it active.", "info")
            return redirect(url_for("staff.campaign", campaign_id=item.id), code=303)
    return _campaigns_page(form, status=400)


def _campaigns_page(form, status=200):
    return render_template("staff/campaigns.html", campaigns=_campaigns(), form=form,
                           can_edit=current_user.role in auth.PERMISSIONS["campaigns.write"]), status


@bp.get("/campaigns/<int(max=2147483647):campaign_id>")
@auth.require("campaigns.read")
def campaign(campaign_id: int):
    item = db.get_or_404(Campaign, campaign_id)
    return _campaign_page(item)


def _copy_form(item: Campaign):
    form = CampaignForm(formdata=None, obj=item, default_frequency=item.default_frequency.value)
    preset_text = {_preset_field(f, c): ", ".join(Money(a, c).major_str() for a in item.preset_amounts(f, c))
                   for f in Frequency for c in current_app.config["CURRENCIES"]}
    return form, preset_text


@bp.post("/campaigns/<int(max=2147483647):campaign_id>")
@auth.require("campaigns.write")
def save_campaign(campaign_id: int):
    """Save the ask, or (action=preview) show it with the typed copy without saving."""
    item = db.get_or_404(Campaign, campaign_id)
    form = CampaignForm()
    preset_text = _typed_presets()
    preview = ask_view(item, "en")
    if not form.validate_on_submit():
        return _campaign_page(item, form=form, preset_text=preset_text, preview=preview, status=400)
    try:
        presets = _parse_preset_fields(preset_text, every=True)
    except ops.StaffActionError as exc:
        return _campaign_page(item, form=form, preset_text=preset_text, preview=preview, error=str(exc), status=400)
    values = dict(headline=form.headline.data, body=form.body.data, button_label=form.button_label.data,
                  thank_you=form.thank_you.data, default_frequency=Frequency(form.default_frequency.data),
                  presets=presets)
    if request.form.get("action") == "preview":
        currency = preview["currency"]
        preview.update(
            headline=values["headline"], button_label=values["button_label"], thank_you=values["thank_you"],
            body=values["body"].replace("{publication}", current_app.config["PUBLICATION_NAME"]),
            default_frequency=values["default_frequency"].value,
            presets={f: [{"amount": a, "major": Money(a, currency).major_str(), "label": Money(a, currency).format()}
                         for a in presets[f].get(currency, [])] for f in presets},
        )
        return _campaign_page(item, form=form, preset_text=preset_text, preview=preview)
    ops.update_campaign(item, **values)
    db.session.commit()
    flash("Saved. The ask shows the new copy everywhere now.", "info")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), code=303)


def _typed_presets() -> dict[str, str]:
    return {_preset_field(f, c): (request.form.get(_preset_field(f, c)) or "")[:200]
            for f in Frequency for c in current_app.config["CURRENCIES"]}


def _parse_preset_fields(preset_text: dict[str, str], every: bool) -> dict[str, dict[str, list[int]]]:
    """The preset fields in minor units: every frequency and currency (a campaign), or only those filled in
    (a variant's overrides)."""
    presets: dict[str, dict[str, list[int]]] = {}
    for f in Frequency:
        for c in current_app.config["CURRENCIES"]:
            text = preset_text[_preset_field(f, c)]
            if every or text.strip():
                presets.setdefault(f.value, {})[c] = ops.parse_presets(text, c)
    return presets


def _preset_field(frequency: Frequency, currency: str) -> str:
    return f"presets_{frequency.value}_{currency}"


def _settings_form(item: Campaign) -> CampaignSettingsForm:
    def local(value):  # a datetime-local field's text, in UTC
        return value.strftime("%Y-%m-%dT%H:%M") if value else ""

    goal = Money(item.goal_amount, item.goal_currency).major_str() if item.goal_amount and item.goal_currency else ""
    # As data, not obj=: WTForms prefers an object's attributes to keyword values, and the form wants text.
    return CampaignSettingsForm(formdata=None, data=dict(
        name=item.name, language=item.language, active=item.active, priority=item.priority,
        starts_at=local(item.starts_at), ends_at=local(item.ends_at), goal_amount=goal,
        goal_currency=item.goal_currency or current_app.config["CURRENCIES"][0], goal_period=item.goal_period.value,
        sections="\n".join(item.sections), url_patterns="\n".join(item.url_patterns),
        languages="\n".join(item.languages), hide_from_supporters=item.hide_from_supporters,
        placement=item.placement.value, after_paragraph=item.after_paragraph, cap_views=item.cap_views,
        cap_days=item.cap_days, allocation=item.allocation.value, allocation_floor=item.allocation_floor))


@bp.post("/campaigns/<int(max=2147483647):campaign_id>/settings")
@auth.require("campaigns.write")
def save_campaign_settings(campaign_id: int):
    """Schedule, goal, rules, placement, frequency cap, allocation and priority; live at once."""
    item = db.get_or_404(Campaign, campaign_id)
    form = CampaignSettingsForm()
    valid = form.validate_on_submit()
    if item.slug == DEFAULT_SLUG and not form.active.data:
        # The donation page without a campaign link (and the noscript link) is the default campaign's.
        form.active.errors = [*form.active.errors, "The default campaign stays active: the donation page uses it. "
                              "To take it off articles, end its schedule or give another campaign priority."]
        valid = False
    if not valid:
        return _campaign_page(item, settings_form=form, status=400)
    v = form.values
    try:
        ops.update_campaign_settings(
            item, name=form.name.data.strip(), language=form.language.data, active=form.active.data,
            starts_at=v["starts_at"], ends_at=v["ends_at"], priority=form.priority.data, goal_amount=v["goal_amount"],
            goal_currency=form.goal_currency.data, goal_period=GoalPeriod(form.goal_period.data),
            sections=v["sections"], url_patterns=v["url_patterns"], languages=v["languages"],
            hide_from_supporters=form.hide_from_supporters.data, placement=Placement(form.placement.data),
            after_paragraph=form.after_paragraph.data, cap_views=form.cap_views.data, cap_days=form.cap_days.data,
            allocation=Allocation(form.allocation.data), allocation_floor=form.allocation_floor.data)
    except ops.NoWeightLeft as exc:  # raised before anything is changed
        form.allocation.errors = [*form.allocation.errors, f"{exc} Give a variant a weight first, or split by "
                                  "Thompson sampling."]
        return _campaign_page(item, settings_form=form, status=400)
    db.session.commit()
    flash("Settings saved.", "info")
    return redirect(url_for("staff.campaign", campaign_id=campaign_id), code=303)


def _variant_values(form: VariantForm) -> dict:
    """The variant form's values for the operation; empty overrides are None (the campaign's own)."""
    return dict(
        name=form.name.data.strip(), weight=form.weight.data, active=form.active.data,
        headline=(form.headline.data or "").strip() or None, body=(form.body.data or "").strip() or None,
        button_label=(form.button_label.data or "").strip() or None,
        default_frequency=Frequency(form.default_frequency.data) if form.default_frequency.data else None,
        placement=Placement(form.placement.data) if form.placement.data else None,
        after_paragraph=form.after_paragraph.data)


@bp.post("/campaigns/<int(max=2147483647):campaign_id>/variants")
@auth.require("campaigns.write")
def create_variant(campaign_id: int):
    """A new variant: key, name, weight, copy overrides, presets overrides, frequency and placement."""
    item = db.get_or_404(Campaign, campaign_id)
    form = VariantForm()
    preset_text = _typed_presets()
    error = None
    if form.validate_on_submit():
        try:
            presets = _parse_preset_fields(preset_text, every=False) or None
            variant = ops.create_variant(item, key=form.key.data, presets=presets, **_variant_values(form))
        except ops.DuplicateVariantKey as exc:
            form.key.errors = [str(exc)]
        except ops.StaffActionError as exc:
            error = str(exc)
        else:
            db.session.commit()
            flash(f"Variant {variant.key} added.", "info")
            return redirect(url_for("staff.variant", campaign_id=campaign_id, variant_id=variant.id), code=303)
    return _campaign_page(item, variant_form=form, variant_presets=preset_text, variant_error=error, status=400)


def _variant_or_404(campaign_id: int, variant_id: int) -> CampaignVariant:
    variant = db.get_or_404(CampaignVariant, variant_id)
    if variant.campaign_id != campaign_id:
        abort(404)
    return variant


@bp.get("/campaigns/<int(max=2147483647):campaign_id>/variants/<int(max=2147483647):variant_id>")
@auth.require("campaigns.read")
def variant(campaign_id: int, variant_id: int):
    return _variant_page(_variant_or_404(campaign_id, variant_id))


@bp.post("/campaigns/<int(max=2147483647):campaign_id>/variants/<int(max=2147483647):variant_id>")
@auth.require("campaigns.write")
def save_variant(campaign_id: int, variant_id: int):
    """Save a variant (its key stays as it is: it travels in counts and donation links), or deactivate it."""
    item = _variant_or_404(campaign_id, variant_id)
    form = VariantForm()
    del form.key
    preset_text = _typed_presets()
    if not form.validate_on_submit():
        return _variant_page(item, form=form, preset_text=preset_text, status=400)
    try:
        presets = _parse_preset_fields(preset_text, every=False) or None
        ops.update_variant(item, presets=presets, **_variant_values(form))
    except ops.NoWeightLeft as exc:  # raised before anything is changed; shown by the weight field
        form.weight.errors = [*form.weight.errors, str(exc)]
        return _variant_page(item, form=form, preset_text=preset_text, status=400)
    except ops.StaffActionError as exc:  # raised before anything is changed
        return _variant_page(item, form=form, preset_text=preset_text, error=str(exc), status=400)
    db.session.commit()
    flash(f"Variant {item.key} saved.", "info")
    return redirect(url_for("staff.variant", campaign_id=campaign_id, variant_id=variant_id), code=303)


@bp.post("/campaigns/<int(max=2147483647):campaign_id>/variants/<int(max=2147483647):variant_id>/translations")
@auth.require("campaigns.write")
def save_translation(campaign_id: int, variant_id: int):
    """A variant's copy in one language; all fields empty removes that translation."""
    item = _variant_or_404(campaign_id, variant_id)
    form = TranslationForm()
    if not form.validate_on_submit():
        return _variant_page(item, translation_form=form, status=400)
    ops.save_translation(item, form.locale.data, headline=form.headline.data, body=form.body.data,
                         button_label=form.button_label.data, thank_you=form.thank_you.data)
    db.session.commit()
    flash(f"The {form.locale.data} copy of variant {item.key} is saved.", "info")
    return redirect(url_for("staff.variant", campaign_id=campaign_id, variant_id=variant_id), code=303)


def _variant_page(item: CampaignVariant, form=None, preset_text=None, translation_form=None, error=None, status=200):
    if form is None:
        form = VariantForm(formdata=None, data=dict(
            name=item.name, weight=item.weight, active=item.active, headline=item.headline or "",
            body=item.body or "", button_label=item.button_label or "",
            default_frequency=item.default_frequency.value if item.default_frequency else "",
            placement=item.placement.value if item.placement else "", after_paragraph=item.after_paragraph))
        del form.key
    if preset_text is None:
        preset_text = {_preset_field(f, c): ", ".join(
            Money(a, c).major_str() for a in (item.presets or {}).get(f.value, {}).get(c, []))
            for f in Frequency for c in current_app.config["CURRENCIES"]}
    return render_template(
        "staff/campaign_variant.html", campaign=item.campaign, variant=item, form=form, preset_text=preset_text,
        translation_form=translation_form or TranslationForm(formdata=None), error=error,
        currencies=current_app.config["CURRENCIES"], frequencies=list(Frequency), preset_field=_preset_field,
        can_edit=current_user.role in auth.PERMISSIONS["campaigns.write"]), status


def _stats_range() -> tuple[date, date]:
    """The A/B table's days (UTC), from ?from= and ?to=; the last 30 days by default."""
    today = datetime.now(timezone.utc).date()
    start, end = _date_arg("from") or today - timedelta(days=29), _date_arg("to") or today
    return (end, start) if start > end else (start, end)


def _embed_snippet(item: Campaign) -> str:
    """The tag a publisher pastes into the article template (escaped by the template when shown)."""
    src = current_app.config["PUBLIC_URL"] + embed_script_url()
    after = f' data-after-paragraph="{item.after_paragraph}"' if item.after_paragraph else ""
    return f'<script src="{src}" data-campaign="{item.slug}" data-selector="article"{after} async></script>'


def _campaign_page(item, *, form=None, preset_text=None, preview=None, error=None, settings_form=None,
                   variant_form=None, variant_presets=None, variant_error=None, status=200):
    if form is None:
        form, preset_text = _copy_form(item)
    start, end = _stats_range()
    return render_template(
        "staff/campaign.html", campaign=item, form=form, preset_text=preset_text,
        currencies=current_app.config["CURRENCIES"], frequencies=list(Frequency), error=error,
        ask=preview or ask_view(item, "en"), donate_url="#", preset_field=_preset_field,
        settings=settings_form or _settings_form(item),
        variant_form=variant_form or VariantForm(formdata=None),
        variant_presets=variant_presets or {_preset_field(f, c): "" for f in Frequency
                                            for c in current_app.config["CURRENCIES"]},
        variant_error=variant_error, goal=progress(item, now_utc()), snippet=_embed_snippet(item),
        stats=variant_stats(item, start, end), stats_from=start, stats_to=end, shares=allocation(item),
        can_edit=current_user.role in auth.PERMISSIONS["campaigns.write"]), status


@bp.get("/emails")
@auth.require("emails.read")
def outbox():
    status = request.args.get("status", "")
    stmt = select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(200)
    if status in {s.value for s in EmailStatus}:
        stmt = stmt.where(OutboxEmail.status == EmailStatus(status))
    return render_template("staff/emails.html", rows=list(db.session.scalars(stmt)), status=status,
                           action_form=ActionForm(), possible_duplicates=ops.possible_duplicates(),
                           can_resend=current_user.role in auth.PERMISSIONS["emails.write"])


@bp.post("/emails/<int(max=2147483647):email_id>/resend")
@auth.require("emails.write")
def resend_email(email_id: int):
    email = db.get_or_404(OutboxEmail, email_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        ops.resend_email(email)
    except ops.StaffActionError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"The email to {email.to_address} is queued to be sent again now.", "info")
    return redirect(url_for("staff.outbox", status=request.args.get("status") or None), code=303)


@bp.route("/reports", methods=["GET", "POST"])
@auth.require("reports.read")
def reports():
    """The accountant's exports. The form (POST) downloads a small export at once and queues a large one for
    the scheduler; a link with ?kind=&from=&to=&format= downloads a small export at once."""
    if request.method == "GET" and not request.args:
        return _reports_page(ExportForm(formdata=None))
    form = ExportForm(request.form if request.method == "POST" else request.args, meta={
        "csrf": request.method == "POST"})
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    values = form.data if request.method == "POST" else {
        "kind": request.args.get("kind"), "start": request.args.get("from"), "end": request.args.get("to"),
        "fiscal_year": request.args.get("fiscal_year"), "payout": request.args.get("payout"),
        "format": request.args.get("format"), "bom": request.args.get("bom") == "1"}
    try:
        kind, params, fmt = export_ops.parse_export_request(values["kind"], values["start"], values["end"],
                                                            values["fiscal_year"], values["payout"], values["format"])
    except ExportParamError as exc:
        return _reports_page(form, error=str(exc), status=400)
    bom = bool(values["bom"]) and fmt == "csv"
    if kind.count(params) <= current_app.config["EXPORT_DIRECT_MAX_ROWS"]:
        return _download_now(kind, params, fmt, bom)
    if request.method == "GET":  # a link changes nothing: a background export is asked for with the form
        return _reports_page(form, error="This export is too large to download at once. "
                                         "Use the form to have it prepared in the background.", status=400)
    job = export_ops.request_export(current_user, kind, params, fmt, bom)
    db.session.commit()
    return redirect(url_for("staff.export_job", job_id=job.id), code=303)


def _reports_page(form, error=None, status=200):
    today = date.today()
    jobs = db.session.scalars(select(ExportJob).order_by(ExportJob.id.desc()).limit(20)).all()
    return render_template("staff/reports.html", form=form, kinds=export_kinds().values(), jobs=jobs,
                           default_from=form.start.data or today.replace(day=1), default_to=form.end.data or today,
                           error=error), status


def _download_now(kind, params, fmt, bom):
    auth.audit("export", kind.name, None, format=fmt,
               **{key: value for key, value in params.to_json().items() if value})
    db.session.commit()
    headers = {"Content-Disposition": f'attachment; filename="{kind.name}-{params.label()}.{fmt}"'}
    if fmt == "xlsx":
        data = io.BytesIO()  # a zip file cannot be streamed before it is complete
        write_xlsx(kind, data, params)
        return Response(data.getvalue(), headers=headers, mimetype=XLSX_TYPE)
    return Response(stream_with_context(csv_chunks(kind, params, bom)), headers=headers,
                    mimetype="text/csv; charset=utf-8")


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/reports/jobs/<int(max=2147483647):job_id>")
@auth.require("reports.read")
def export_job(job_id: int):
    job = db.get_or_404(ExportJob, job_id)
    return render_template("staff/export_job.html", job=job, state=_job_state(job))


@bp.get("/reports/jobs/<int(max=2147483647):job_id>/status")
@auth.require("reports.read")
def export_job_status(job_id: int):
    return jsonify(_job_state(db.get_or_404(ExportJob, job_id)))


def _job_state(job: ExportJob) -> dict:
    return export_ops.job_state(job, url_for("staff.export_download", job_id=job.id))


@bp.get("/reports/jobs/<int(max=2147483647):job_id>/download")
@auth.require("reports.read")
def export_download(job_id: int):
    job = db.get_or_404(ExportJob, job_id)
    if job.deleted_at is not None:
        abort(410, description="This file was deleted a day after it was made. Please ask for the export again.")
    if not export_ops.downloadable(job):
        abort(404, description="This export is not ready.")
    auth.audit("export.download", "export_job", job.id, kind=job.kind, format=job.format)
    db.session.commit()
    mimetype = XLSX_TYPE if job.format == "xlsx" else "text/csv; charset=utf-8"
    if job.size_bytes is None:  # finished before the files moved into the database
        return send_file(job.file_path, as_attachment=True, download_name=job.file_name, mimetype=mimetype,
                         max_age=0)
    response = Response(stream_with_context(export_ops.file_chunks(job.id)), mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment", filename=job.file_name)
    response.headers["Content-Length"] = str(job.size_bytes)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/audit")
@auth.require("audit.read")
def audit_log():
    before = id_arg(request.args.get("before"))
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(ops.PAGE + 1)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    rows = list(db.session.scalars(stmt))
    return render_template("staff/audit.html", rows=rows[:ops.PAGE],
                           next_before=rows[ops.PAGE - 1].id if len(rows) > ops.PAGE else None)


@bp.get("/users")
@auth.require("users.read")
def users():
    return _users_page(UserForm(formdata=None))


@bp.post("/users")
@auth.require("users.write")
def create_user():
    form = UserForm()
    if form.validate_on_submit():
        if auth.find_user(form.email.data):
            form.email.errors = ["A staff user with this address exists."]
        else:
            user = auth.create_user(form.email.data, Role(form.role.data), form.password.data)
            auth.audit("user.create", "staff_user", user.id, email=user.email, role=user.role.value)
            db.session.commit()
            flash(f"{user.email} can sign in now.", "info")
            return redirect(url_for("staff.users"), code=303)
    return _users_page(form, status=400)


def _users_page(form, status=200):
    rows = list(db.session.scalars(select(StaffUser).order_by(StaffUser.email)))
    return render_template("staff/users.html", rows=rows, form=form, change_form=UserChangeForm(formdata=None),
                           roles=list(Role)), status


@bp.post("/users/<int(max=2147483647):user_id>")
@auth.require("users.write")
def change_user(user_id: int):
    user = db.get_or_404(StaffUser, user_id)
    form = UserChangeForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        ops.change_user(user, role=Role(form.role.data), active=form.active.data == "1", actor=current_user)
    except ops.StaffActionError as exc:
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"{user.email} is saved.", "info")
    return redirect(url_for("staff.users"), code=303)
