"""Scheduled work of the defences: switching attack mode on while card testing goes on."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select

from ..checkout.models import AttemptStatus, CheckoutAttempt
from ..db import now_utc
from ..extensions import db
from ..mail import outbox
from .antifraud import ATTACK_MODE, ATTACK_MODE_ENDED, forget_attack_mode
from .models import SecurityState

#: A checkout page still open this long after it was made counts as abandoned (a reader pays in a minute or
#: two; a card tester whose card failed never comes back).
ABANDONED_AFTER = timedelta(minutes=5)


def _aware(moment: datetime | None) -> datetime | None:
    from datetime import timezone

    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def check_attack_mode(now: datetime | None = None) -> dict:
    """Switch attack mode on (or keep it on) while the share of declined or abandoned checkouts spikes.

    Among the checkout pages opened in the last ATTACK_WINDOW_MINUTES: when there are at least
    ATTACK_MIN_ATTEMPTS and at least ATTACK_FAILURE_SHARE of them saw a card declined, expired, or are still
    open after a few minutes, and that share is also ATTACK_BASELINE_MARGIN above the usual share of the
    ATTACK_BASELINE_DAYS before (when those days saw enough checkouts to tell), attack mode runs until
    ATTACK_MODE_MINUTES from now (every CAPTCHA-less gift then meets a stricter per-address limit, and with a
    provider every gift needs the CAPTCHA). Staff get one alert
    per attack. It ends by itself when ``active_until`` passes, or when an admin ends it (end_attack_mode):
    then only the checkouts opened after that moment count, so it switches on again only when the card
    testing goes on (as a new attack, with a new alert), never at once from the checkouts already seen.
    """
    config = current_app.config
    now = now or now_utc()
    window_start = since = now - timedelta(minutes=config["ATTACK_WINDOW_MINUTES"])
    # The attack-mode row is locked before anything is read, so an admin's end_attack_mode (which locks it too)
    # is wholly before this run or wholly after it; an end that came after this run's ``now`` counts as well.
    state = db.session.get(SecurityState, ATTACK_MODE, with_for_update=True, populate_existing=True)
    ended = db.session.get(SecurityState, ATTACK_MODE_ENDED, populate_existing=True)
    ended_at = _aware(ended.started_at) if ended is not None else None
    if ended_at is not None and since < ended_at:
        since = ended_at
    failed = or_(CheckoutAttempt.declines > 0, CheckoutAttempt.status == AttemptStatus.EXPIRED,
                 and_(CheckoutAttempt.status == AttemptStatus.OPEN, CheckoutAttempt.created_at < now - ABANDONED_AFTER))

    def share(start: datetime, end: datetime | None = None) -> tuple[int, int]:
        """Checkouts opened from ``start`` (until ``end``), and how many of them failed."""
        window = [CheckoutAttempt.created_at >= start, CheckoutAttempt.checkout_session_id.is_not(None)]
        if end is not None:
            window.append(CheckoutAttempt.created_at < end)
        return tuple(db.session.execute(select(func.count(), func.count().filter(failed)).where(*window)).one())

    total, failures = share(since)
    detail = (f"{failures} of {total} checkouts declined or abandoned in the last "
              f"{config['ATTACK_WINDOW_MINUTES']} minutes" if since == window_start else
              f"{failures} of {total} checkouts declined or abandoned since attack mode was ended by hand at "
              f"{since:%H:%M} UTC")
    spike = total >= config["ATTACK_MIN_ATTEMPTS"] and failures / total >= config["ATTACK_FAILURE_SHARE"]
    if spike and config["ATTACK_BASELINE_DAYS"]:
        usual_total, usual_failures = share(window_start - timedelta(days=config["ATTACK_BASELINE_DAYS"]),
                                            window_start)
        if usual_total >= config["ATTACK_MIN_ATTEMPTS"]:
            usual = usual_failures / usual_total
            detail += f" (usually {usual:.0%})"
            spike = failures / total >= usual + config["ATTACK_BASELINE_MARGIN"]
    if not spike:
        if state is not None:
            state.detail = detail
        return {"attempts": total, "failed": failures, "active": int(_active(state, now)), "alerted": 0}
    if state is None:
        state = SecurityState(name=ATTACK_MODE)
        db.session.add(state)
    if not _active(state, now):
        state.started_at = now  # a new attack (the last one, if any, has ended)
    state.active_until = now + timedelta(minutes=config["ATTACK_MODE_MINUTES"])
    state.detail = detail
    alerted = 0
    if state.alerted_at is None or _aware(state.alerted_at) < _aware(state.started_at):
        _queue_alert(state, total, failures)
        state.alerted_at = now
        alerted = len(_recipients())
    db.session.flush()
    forget_attack_mode()
    return {"attempts": total, "failed": failures, "active": 1, "alerted": alerted}


def end_attack_mode(now: datetime | None = None) -> dict | None:
    """End attack mode now (an admin, on /staff/jobs): ``active_until`` becomes now, and the moment is kept
    (ATTACK_MODE_ENDED) so that check_attack_mode counts only the checkouts opened after it. Returns the
    attack as it was, for the audit log ({"started_at", "active_until"}, ISO 8601), or None when attack mode
    was off: nothing is changed then."""
    now = now or now_utc()
    state = db.session.get(SecurityState, ATTACK_MODE, with_for_update=True)
    if not _active(state, now):
        return None
    before = {"started_at": _aware(state.started_at).isoformat() if state.started_at else None,
              "active_until": _aware(state.active_until).isoformat()}
    state.active_until = now
    ended = db.session.get(SecurityState, ATTACK_MODE_ENDED, with_for_update=True)
    if ended is None:
        ended = SecurityState(name=ATTACK_MODE_ENDED)
        db.session.add(ended)
    ended.started_at = now
    db.session.flush()
    forget_attack_mode()
    return before


def ended_by_hand_at() -> datetime | None:
    """When an admin last ended attack mode by hand, or None."""
    ended = db.session.get(SecurityState, ATTACK_MODE_ENDED)
    return _aware(ended.started_at) if ended is not None else None


def _active(state: SecurityState | None, now: datetime) -> bool:
    return state is not None and state.active_until is not None and _aware(state.active_until) > now


def _recipients() -> list[str]:
    """SECURITY_ALERT_EMAILS, or every active staff admin when none are set."""
    configured = current_app.config["SECURITY_ALERT_EMAILS"]
    if configured:
        return list(configured)
    from ..staff.models import Role, StaffUser

    return list(db.session.scalars(select(StaffUser.email).where(StaffUser.role == Role.ADMIN,
                                                                 StaffUser.active.is_(True))
                                   .order_by(StaffUser.id)))


def _queue_alert(state: SecurityState, total: int, failures: int) -> None:
    """One email per recipient per attack (the dedupe key names the attack by its start)."""
    config = current_app.config
    context = {
        "publication": config["PUBLICATION_NAME"],
        "started_at": _aware(state.started_at).strftime("%Y-%m-%d %H:%M UTC"),
        "active_until": _aware(state.active_until).strftime("%Y-%m-%d %H:%M UTC"),
        "detail": state.detail,
        "captcha": bool(config["CAPTCHA_PROVIDER"]),
        "jobs_url": f"{config['PUBLIC_URL']}/staff/jobs",
        "window": config["ATTACK_WINDOW_MINUTES"],
    }
    started = _aware(state.started_at).strftime("%Y%m%dT%H%M%S.%f")
    for address in _recipients():
        outbox.queue("security_alert", address, context, dedupe_key=f"security_alert:{started}:{address}"[:255])
