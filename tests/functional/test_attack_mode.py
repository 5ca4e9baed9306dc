"""Attack mode: switched on by the scheduler while declined or abandoned checkouts spike, one alert per attack,
ends by itself; declines counted from Stripe's payment_intent.payment_failed."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from donations.checkout.models import AttemptStatus, CheckoutAttempt
from donations.db import now_utc
from donations.extensions import db
from donations.mail.models import OutboxEmail
from donations.payments import sandbox_gateway
from donations.security import antifraud
from donations.security.jobs import check_attack_mode
from donations.security.models import SecurityState
from tests.factories import event, make_attempt, post_event
from tests.functional.antifraud_helpers import API, api_body, fresh_attack_mode  # noqa: F401 (fixture)
from tests.staff_helpers import make_user, signed_in




@pytest.fixture
def settings(app, monkeypatch):
    for key, value in {"ATTACK_WINDOW_MINUTES": 10, "ATTACK_MIN_ATTEMPTS": 10, "ATTACK_FAILURE_SHARE": 0.6,
                       "ATTACK_MODE_MINUTES": 60, "ATTACK_BASELINE_DAYS": 7, "ATTACK_BASELINE_MARGIN": 0.2,
                       "SECURITY_ALERT_EMAILS": ["security@example.org"]}.items():
        monkeypatch.setitem(app.config, key, value)
    return app.config


def attempts(n: int, *, declined: int = 0, expired: int = 0, open_old: int = 0, ago: timedelta = timedelta(minutes=1)):
    """``n`` checkouts opened ``ago``: the first ``declined`` saw a decline, the next ``expired`` expired, the next
    ``open_old`` were left open (and are made 6 minutes older)."""
    made = []
    for i in range(n):
        attempt = make_attempt(email=f"card{i}-{len(made)}@example.net")
        attempt.created_at = now_utc() - ago
        if i < declined:
            attempt.declines = 1
        elif i < declined + expired:
            attempt.status = AttemptStatus.EXPIRED
        elif i < declined + expired + open_old:
            attempt.created_at = now_utc() - ago - timedelta(minutes=6)
        else:
            attempt.status = AttemptStatus.COMPLETED
        made.append(attempt)
    db.session.flush()
    return made


def alerts() -> list[OutboxEmail]:
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == "security_alert")))


def state() -> SecurityState | None:
    return db.session.get(SecurityState, "attack_mode")


def test_a_spike_of_declines_switches_attack_mode_on_and_alerts_once(app_ctx, settings):
    attempts(12, declined=6, expired=2)  # 8 of 12 = 67 %

    counts = check_attack_mode()

    assert counts == {"attempts": 12, "failed": 8, "active": 1, "alerted": 1}
    assert antifraud.attack_mode_active()
    row = state()
    assert row.detail == "8 of 12 checkouts declined or abandoned in the last 10 minutes"
    [alert] = alerts()
    assert alert.to_address == "security@example.org" and "Attack mode is on" in alert.subject
    assert "8 of 12 checkouts declined or abandoned" in alert.body_text and "No CAPTCHA is configured" in alert.body_text

    # The spike goes on: attack mode is extended, staff are not told again.
    later = now_utc() + timedelta(minutes=5)  # the same checkouts are still within the window
    assert check_attack_mode(later)["alerted"] == 0
    assert len(alerts()) == 1
    assert abs((state().active_until.replace(tzinfo=None) - (later + timedelta(minutes=60)).replace(tzinfo=None))
               .total_seconds()) < 1


def test_too_few_checkouts_or_too_small_a_share_leave_it_off(app_ctx, settings):
    attempts(9, declined=9)  # below ATTACK_MIN_ATTEMPTS
    assert check_attack_mode()["active"] == 0
    attempts(11, declined=2)  # 11 of 20 failed: 55 % < 60 %
    assert check_attack_mode() == {"attempts": 20, "failed": 11, "active": 0, "alerted": 0}
    assert not antifraud.attack_mode_active() and alerts() == []


def test_checkouts_left_open_for_minutes_count_as_abandoned_and_fresh_ones_do_not(app_ctx, settings):
    attempts(10, open_old=6)  # 6 opened 7 minutes ago, unpaid; 4 paid
    assert check_attack_mode()["failed"] == 6 and state().active_until is not None
    db.session.delete(state())
    for attempt in db.session.scalars(select(CheckoutAttempt)):
        attempt.status = AttemptStatus.OPEN
        attempt.created_at = now_utc() - timedelta(seconds=30)  # readers still on the checkout page
    db.session.flush()
    assert check_attack_mode()["failed"] == 0


def test_a_publication_whose_readers_often_abandon_is_not_in_attack_mode_at_its_usual_share(app_ctx, settings):
    """A spike is measured against the last days: 70 % abandoned is this publication's normal, not an attack."""
    attempts(40, open_old=28, ago=timedelta(days=2))  # usually 70 % declined or abandoned
    attempts(20, open_old=14)  # 70 % now: the usual share

    assert check_attack_mode() == {"attempts": 20, "failed": 14, "active": 0, "alerted": 0}
    assert state() is None or state().active_until is None
    assert alerts() == []

    attempts(20, declined=20)  # card testing: 34 of 40 = 85 %, 15 points above the usual 70 % (margin 20)
    assert check_attack_mode()["active"] == 0
    attempts(40, declined=40)  # 74 of 80 = 92.5 %: a spike
    assert check_attack_mode() == {"attempts": 80, "failed": 74, "active": 1, "alerted": 1}
    assert state().detail == "74 of 80 checkouts declined or abandoned in the last 10 minutes (usually 70%)"


def test_without_enough_history_the_share_alone_decides(app_ctx, settings):
    attempts(5, open_old=5, ago=timedelta(days=1))  # too few past checkouts to know the usual share
    attempts(12, declined=8)
    assert check_attack_mode()["active"] == 1


def test_checkouts_outside_the_window_are_not_counted(app_ctx, settings):
    attempts(20, declined=20, ago=timedelta(minutes=11))
    assert check_attack_mode()["attempts"] == 0


def test_attack_mode_ends_by_itself_and_a_new_attack_alerts_again(app_ctx, settings):
    attempts(10, declined=10)
    check_attack_mode()
    first_alert = state().alerted_at

    after = now_utc() + timedelta(minutes=75)  # the spike is over (outside the window), active_until has passed
    assert check_attack_mode(after)["active"] == 0
    antifraud.forget_attack_mode()
    state().active_until = now_utc() - timedelta(seconds=1)  # as the clock would have it by then
    db.session.flush()
    antifraud.forget_attack_mode()
    assert not antifraud.attack_mode_active()

    attempts(10, declined=10, ago=timedelta(0))
    assert check_attack_mode()["alerted"] == 1
    assert len(alerts()) == 2 and state().alerted_at > first_alert


def test_the_alert_goes_to_the_active_admins_when_no_address_is_set(app, app_ctx, settings, monkeypatch):
    monkeypatch.setitem(app.config, "SECURITY_ALERT_EMAILS", [])
    make_user(app, "admin", email="boss@example.org")
    make_user(app, "staff", email="helper@example.org")
    attempts(10, declined=10)

    check_attack_mode()

    assert sorted(email.to_address for email in alerts()) == ["boss@example.org"]


def test_the_web_side_reads_attack_mode_with_a_short_cache(app, app_ctx, settings, monkeypatch):
    db.session.add(SecurityState(name="attack_mode", active_until=now_utc() + timedelta(minutes=5)))
    db.session.flush()
    assert antifraud.attack_mode_active()
    state().active_until = now_utc() - timedelta(seconds=1)
    db.session.flush()
    assert antifraud.attack_mode_active()  # cached for a few seconds
    monkeypatch.setattr(antifraud, "ATTACK_CACHE_SECONDS", 0)
    antifraud.forget_attack_mode()
    assert not antifraud.attack_mode_active()


def test_in_attack_mode_without_a_captcha_each_address_gets_a_fifth_of_its_limit(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_PER_IP", "10 per minute")
    with app.app_context():
        db.session.add(SecurityState(name="attack_mode", active_until=now_utc() + timedelta(minutes=5)))
        db.session.commit()
        antifraud.forget_attack_mode()

    statuses = [client.post(API, json=api_body(email=f"r{n}@example.com")).status_code for n in range(4)]

    assert statuses == [201, 201, 429, 429]


def test_the_staff_jobs_page_shows_attack_mode(app, client, settings):
    staff = signed_in(client, "staff")
    assert "<strong>Off.</strong>" in staff.get("/staff/jobs").get_data(as_text=True)
    with app.app_context():
        attempts(10, declined=10)
        check_attack_mode()
        db.session.commit()

    page = staff.get("/staff/jobs").get_data(as_text=True)

    section = page.split('id="attack-mode"')[1].split("</section>")[0]
    assert "<strong>On</strong>" in section and "10 of 10 checkouts declined or abandoned" in section
    assert "a fifth of the usual checkouts" in section and "Staff were alerted" in section


# -- declines from Stripe ----------------------------------------------------------------------------


def failed_intent(attempt_id: str | None) -> dict:
    return {"id": "pi_test_declined", "object": "payment_intent", "amount": 100, "currency": "eur",
            "status": "requires_payment_method", "metadata": {"attempt_id": attempt_id} if attempt_id else {},
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "stolen_card"}}


def test_payment_failed_counts_a_decline_on_the_attempt_once_per_event(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()
    evt = event("payment_intent.payment_failed", failed_intent(attempt.id))

    assert post_event(client, evt).get_json()["outcome"] == f"attempt {attempt.id}: card declined"
    assert post_event(client, evt).get_json()["outcome"] == "duplicate"
    post_event(client, event("payment_intent.payment_failed", failed_intent(attempt.id)))

    db.session.refresh(attempt)
    assert attempt.declines == 2


def test_payment_failed_for_someone_elses_payment_is_ignored(app_ctx, client):
    response = post_event(client, event("payment_intent.payment_failed", failed_intent(None)))
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored: not ours"


def test_a_declined_card_in_the_sandbox_counts_as_a_decline(app_ctx, client):
    attempt = make_attempt()
    db.session.commit()

    result = sandbox_gateway.pay(attempt.checkout_session_id, "4000000000000002")

    assert not result.paid
    db.session.refresh(attempt)
    assert attempt.declines == 1


# -- ending it by hand (/staff/jobs, admins) -----------------------------------------------------------

END = "/staff/jobs/attack-mode/end"


def attack_on(app) -> None:
    """A spike of declines, seen by the job: attack mode on, as the scheduler leaves it."""
    with app.app_context():
        attempts(10, declined=10)
        assert check_attack_mode()["active"] == 1
        db.session.commit()
        antifraud.forget_attack_mode()


def row(app, name: str = "attack_mode") -> tuple | None:
    with app.app_context():
        found = db.session.get(SecurityState, name)
        return None if found is None else (found.active_until, found.started_at, found.alerted_at)


def captcha_in_attack_mode(app, monkeypatch) -> None:
    """A provider configured for attack mode only; nothing answers at its address, so a gift gets through only
    when no CAPTCHA is asked of it."""
    for key, value in {"CAPTCHA_PROVIDER": "turnstile", "CAPTCHA_SITE_KEY": "site-key",
                       "CAPTCHA_SECRET_KEY": "secret-key", "CAPTCHA_MODE": "attack",
                       "CAPTCHA_VERIFY_URL": "http://127.0.0.1:9/siteverify"}.items():
        monkeypatch.setitem(app.config, key, value)


def test_an_admin_ends_attack_mode_and_gifts_no_longer_need_the_captcha(app, client, settings, monkeypatch):
    from donations.staff.models import AuditEntry
    from tests.staff_helpers import audit_rows

    captcha_in_attack_mode(app, monkeypatch)
    attack_on(app)
    admin = signed_in(client, "admin")
    assert "End attack mode now" in admin.get("/staff/jobs").get_data(as_text=True)
    assert client.post(API, json=api_body(email="during@example.com")).status_code == 400  # the CAPTCHA is asked

    response = admin.post(END)

    assert response.status_code == 303 and response.headers["Location"].endswith("/staff/jobs#attack-mode")
    page = admin.get("/staff/jobs").get_data(as_text=True)
    assert "Attack mode is ended" in page and "<strong>Off.</strong>" in page
    assert "End attack mode now" not in page and "Last ended by hand at" in page
    with app.app_context():
        assert not antifraud.attack_mode_active()
    [entry] = audit_rows(app, AuditEntry.action == "attack_mode.end")
    assert entry["actor_id"] == admin.id and entry["outcome"] == "ok"
    assert entry["object_type"] == "security_state" and entry["object_id"] == "attack_mode"
    assert set(entry["detail"]) == {"started_at", "active_until"}
    assert client.post(API, json=api_body(email="after@example.com")).status_code == 201  # no CAPTCHA asked


def test_after_an_end_by_hand_the_job_does_not_switch_it_on_again_for_the_same_spike(app, client, settings):
    attack_on(app)
    assert signed_in(client, "admin").post(END).status_code == 303

    with app.app_context():
        # The next minute: the same declines are still within the 10-minute window, but were seen already.
        assert check_attack_mode(now_utc() + timedelta(minutes=1))["active"] == 0
        assert "since attack mode was ended by hand at" in state().detail
        db.session.commit()
        antifraud.forget_attack_mode()
        assert not antifraud.attack_mode_active()

        # The card testing goes on: a new spike after the end switches it on again, as a new attack.
        attempts(10, declined=10, ago=timedelta(0))
        assert check_attack_mode(now_utc() + timedelta(seconds=1)) == {
            "attempts": 10, "failed": 10, "active": 1, "alerted": 1}
        assert len(alerts()) == 2


def test_ending_it_when_it_is_off_is_a_notice_and_changes_nothing(app, client, settings):
    from donations.staff.models import AuditEntry
    from tests.staff_helpers import audit_rows

    admin = signed_in(client, "admin")

    response = admin.post(END)

    assert response.status_code == 303
    assert "Attack mode is off already; nothing was changed." in admin.get("/staff/jobs").get_data(as_text=True)
    assert row(app) is None and row(app, "attack_mode_ended") is None
    assert audit_rows(app, AuditEntry.action == "attack_mode.end") == []


@pytest.mark.parametrize("role", ["staff", "accountant"])
def test_staff_and_accountants_may_not_end_it_and_the_refusal_is_audited(app, client, settings, role):
    from donations.staff.models import AuditEntry
    from tests.staff_helpers import audit_rows

    attack_on(app)
    before = row(app)
    user = signed_in(client, role)
    assert "End attack mode now" not in user.get("/staff/jobs").get_data(as_text=True)

    response = user.post(END)

    assert response.status_code == 403
    assert row(app) == before and row(app, "attack_mode_ended") is None
    with app.app_context():
        antifraud.forget_attack_mode()
        assert antifraud.attack_mode_active()
    [denied] = audit_rows(app, AuditEntry.outcome == "denied")
    assert denied["actor_id"] == user.id and denied["detail"]["permission"] == "jobs.attack_mode"
    assert audit_rows(app, AuditEntry.action == "attack_mode.end") == []


def test_without_the_csrf_token_it_is_refused_and_changes_nothing(app, client, settings):
    from donations.staff.models import AuditEntry
    from tests.staff_helpers import audit_rows

    attack_on(app)
    before = row(app)

    response = signed_in(client, "admin").post(END, csrf=False)

    assert response.status_code == 400
    assert row(app) == before and row(app, "attack_mode_ended") is None
    assert audit_rows(app, AuditEntry.action == "attack_mode.end") == []


def test_an_admin_ending_it_while_the_job_runs_is_not_overruled(app_ctx, settings):
    """The job locks the attack-mode row before it reads when attack mode was last ended and counts; an admin
    who ends it while a run is under way (on PostgreSQL the run waits for the admin's commit) is not undone by
    that run's numbers from before the end."""
    from donations.security import jobs as security_jobs
    from donations.security.antifraud import ATTACK_MODE

    attempts(12, declined=8)
    assert check_attack_mode()["active"] == 1
    real_get = db.session.get

    def get(model, key, **kw):
        if model is SecurityState and key == ATTACK_MODE and kw.get("with_for_update"):
            db.session.get = real_get
            security_jobs.end_attack_mode()  # the admin's end, committed before the run gets the lock
        return real_get(model, key, **kw)

    db.session.get = get
    try:
        result = check_attack_mode()
    finally:
        db.session.get = real_get

    assert result["failed"] == 0  # only checkouts opened after the end are counted
    state = db.session.get(SecurityState, ATTACK_MODE)
    assert state.active_until <= now_utc()  # off: the admin's end stands
