"""Staff sign-in: the users CLI, Argon2id, one generic error, rate limits, session rotation, sign-out,
deactivation, idle and absolute timeouts, and the session cookie's flags."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.staff.auth import hash_password
from donations.staff.models import AuditEntry, Role, StaffSession, StaffUser
from tests.staff_helpers import (
    PASSWORD,
    audit_rows,
    browser_with_cookie,
    count,
    in_app,
    is_sign_in_redirect,
    make_user,
    move_session_back,
    session_cookie,
    session_value,
    sign_in,
    signed_in,
    user_state,
)

GENERIC_ERROR = "Email or password is not right."


def run_cli(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def stored_user(app, email: str) -> dict | None:
    with in_app(app):
        user = db.session.scalars(select(StaffUser).where(StaffUser.email == email)).one_or_none()
        return None if user is None else {"id": user.id, "role": user.role, "hash": user.password_hash,
                                          "active": user.active}


def open_sessions(app, user_id: int) -> list[str]:
    with in_app(app):
        return list(db.session.scalars(select(StaffSession.id).where(StaffSession.user_id == user_id,
                                                                     StaffSession.ended_at.is_(None))))


def ended_at(app, sid: str):
    with in_app(app):
        return db.session.get(StaffSession, sid).ended_at


# -- the users CLI -----------------------------------------------------------------------------------

def test_cli_users_create_stores_an_argon2id_hash_and_the_user_can_sign_in(client):
    app = client.application
    result = run_cli(app, "users", "create", "--email", "Editor@Example.org", "--role", "admin", "--password-stdin",
                     input="a long enough password\n")

    assert result.exit_code == 0, result.output
    assert "created admin editor@example.org" in result.output
    user = stored_user(app, "editor@example.org")
    assert user["role"] is Role.ADMIN and user["active"] is True
    assert user["hash"].startswith("$argon2id$")
    assert "a long enough password" not in user["hash"]
    assert sign_in(client, "editor@example.org", "a long enough password").status_code == 303


def test_cli_users_create_writes_an_audit_entry(client):
    app = client.application
    run_cli(app, "users", "create", "--email", "boss@example.org", "--role", "staff", "--password-stdin",
            input="a long enough password\n")

    [entry] = audit_rows(app, AuditEntry.action == "user.create")
    assert entry["object_type"] == "staff_user" and entry["object_id"] == str(stored_user(app, "boss@example.org")["id"])
    assert entry["actor_id"] is None and entry["actor_email"] == "cli"
    assert entry["detail"]["role"] == "staff"


def test_cli_users_create_refuses_a_short_password(client):
    app = client.application
    result = run_cli(app, "users", "create", "--email", "short@example.org", "--role", "admin", "--password-stdin",
                     input="short\n")

    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    assert stored_user(app, "short@example.org") is None


def test_cli_users_create_refuses_an_existing_address(client):
    app = client.application
    make_user(app, "staff", "taken@example.org")
    result = run_cli(app, "users", "create", "--email", "TAKEN@example.org", "--role", "admin", "--password-stdin",
                     input="a long enough password\n")

    assert result.exit_code != 0
    assert "exists already" in result.output
    assert stored_user(app, "taken@example.org")["role"] is Role.STAFF


def test_cli_users_create_refuses_an_unknown_role(client):
    result = run_cli(client.application, "users", "create", "--email", "x@example.org", "--role", "owner",
                     "--password-stdin", input="a long enough password\n")

    assert result.exit_code != 0
    assert stored_user(client.application, "x@example.org") is None


def test_cli_seed_demo_makes_one_demo_admin_who_can_sign_in(client):
    app = client.application
    first = run_cli(app, "seed-demo")
    second = run_cli(app, "seed-demo")

    assert first.exit_code == second.exit_code == 0, first.output
    assert "admin@example.org / demo-admin-password" in first.output
    assert count(app, StaffUser, StaffUser.email == "admin@example.org") == 1
    assert stored_user(app, "admin@example.org")["hash"].startswith("$argon2id$")
    assert sign_in(client, "admin@example.org", "demo-admin-password").status_code == 303


def test_cli_seed_demo_is_refused_in_production(client, monkeypatch):
    app = client.application
    monkeypatch.setitem(app.config, "DONATIONS_ENV", "production")
    result = run_cli(app, "seed-demo")

    assert result.exit_code != 0
    assert stored_user(app, "admin@example.org") is None


# -- signing in --------------------------------------------------------------------------------------

def test_sign_in_page_shows_the_form(client):
    html = client.get("/staff/login").get_data(as_text=True)
    assert 'name="email"' in html and 'name="password"' in html and 'name="csrf_token"' in html


def test_sign_in_with_the_right_password_opens_the_dashboard(client):
    user_id, email = make_user(client.application, "staff")
    response = sign_in(client, email)

    assert response.status_code == 303
    assert client.get("/staff/").status_code == 200
    with in_app(client.application):
        assert db.session.get(StaffUser, user_id).last_login_at is not None


def test_sign_in_is_case_insensitive_for_the_address(client):
    _, email = make_user(client.application, "staff", "casey@example.org")
    assert sign_in(client, "  Casey@Example.ORG ").status_code == 303


def _normalised(html: str, *emails: str) -> str:
    html = re.sub(r'name="csrf_token" type="hidden" value="[^"]*"', "CSRF", html)
    html = re.sub(r'value="[^"]*"', 'value=""', html)
    for email in emails:
        html = html.replace(email, "EMAIL")
    return html


def test_wrong_password_unknown_email_and_deactivated_user_get_the_same_generic_error(client):
    app = client.application
    _, known = make_user(app, "staff", "known@example.org")
    _, inactive = make_user(app, "admin", "gone@example.org", active=False)

    wrong = sign_in(client, known, "not the password at all")
    unknown = sign_in(client, "nobody@example.org", PASSWORD)
    deactivated = sign_in(client, inactive, PASSWORD)  # the right password

    assert wrong.status_code == unknown.status_code == deactivated.status_code == 401
    bodies = [r.get_data(as_text=True) for r in (wrong, unknown, deactivated)]
    assert all(GENERIC_ERROR in body for body in bodies)
    normalised = {_normalised(body, known, "nobody@example.org", inactive) for body in bodies}
    assert len(normalised) == 1, "the three failures must not be told apart"
    assert client.get("/staff/").status_code == 302


def test_failed_sign_ins_are_audited_as_denied(client):
    app = client.application
    user_id, email = make_user(app, "staff")
    sign_in(client, email, "not the password at all")
    sign_in(client, "nobody@example.org")

    entries = audit_rows(app, AuditEntry.action == "sign_in")
    assert [(e["outcome"], e["actor_id"], e["actor_email"]) for e in entries] == [
        ("denied", user_id, email), ("denied", None, "nobody@example.org")]


def test_sign_in_post_without_csrf_token_is_400(client):
    _, email = make_user(client.application, "staff")
    response = client.post("/staff/login", data={"email": email, "password": PASSWORD})

    assert response.status_code == 400
    assert client.get("/staff/").status_code == 302


# -- rate limits -------------------------------------------------------------------------------------

def attempt(client, email: str, ip: str, password: str = "wrong password, again"):
    client.environ_base["REMOTE_ADDR"] = ip
    return sign_in(client, email, password)


def test_sixth_bad_attempt_for_one_account_within_15_minutes_is_429(client):
    _, email = make_user(client.application, "staff", "victim@example.org")
    statuses = [attempt(client, email, "198.51.100.1").status_code for _ in range(6)]

    assert statuses == [401] * 5 + [429]


def test_account_limit_holds_across_addresses_and_spellings(client):
    _, email = make_user(client.application, "staff", "victim@example.org")
    spellings = ["victim@example.org", "Victim@example.org", " VICTIM@EXAMPLE.ORG", "victim@example.org",
                 "victim@Example.org", "victim@example.org"]
    statuses = [attempt(client, spelling, f"198.51.100.{n}").status_code for n, spelling in enumerate(spellings)]

    assert statuses == [401] * 5 + [429]


def test_account_limit_does_not_lock_out_other_accounts(client):
    app = client.application
    _, victim = make_user(app, "staff", "victim@example.org")
    _, other = make_user(app, "staff", "other@example.org")
    for _ in range(6):
        attempt(client, victim, "198.51.100.1")

    assert attempt(client, other, "198.51.100.1", PASSWORD).status_code == 303


def test_successful_sign_ins_do_not_use_up_the_account_limit(client):
    _, email = make_user(client.application, "staff")
    for _ in range(5):
        assert sign_in(client, email).status_code == 303

    assert sign_in(client, email).status_code == 303  # the sixth good sign-in


def test_twenty_first_attempt_from_one_address_within_15_minutes_is_429(client):
    statuses = [attempt(client, f"guess{n}@example.org", "203.0.113.9").status_code for n in range(21)]

    assert statuses == [401] * 20 + [429]
    assert attempt(client, "guess99@example.org", "203.0.113.10").status_code == 401  # another address


# -- the session -------------------------------------------------------------------------------------

def test_sign_in_starts_a_new_session_and_drops_what_was_there_before(client):
    _, email = make_user(client.application, "staff")
    client.get("/staff/login")
    with client.session_transaction() as sess:
        sess["staff_sid"] = "chosen-by-an-attacker"
        sess["planted"] = "a value from before sign-in"
    before = session_value(client, "staff_sid")

    sign_in(client, email)

    after = session_value(client, "staff_sid")
    assert before == "chosen-by-an-attacker"
    assert after and after != before
    assert session_value(client, "planted") is None


def test_each_sign_in_gets_a_new_session_id(client):
    user_id, email = make_user(client.application, "staff")
    sign_in(client, email)
    first = session_value(client, "staff_sid")
    sign_in(client, email)
    second = session_value(client, "staff_sid")

    assert first != second
    assert second in open_sessions(client.application, user_id)


def test_session_cookie_is_httponly_and_samesite_lax(client):
    _, email = make_user(client.application, "staff")
    response = sign_in(client, email)

    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the tests run on http://


def test_session_cookie_ends_with_the_browser(client):
    _, email = make_user(client.application, "staff")
    response = sign_in(client, email)

    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "Expires=" not in cookie and "Max-Age=" not in cookie  # the server's timeouts end it before that


def test_session_cookie_is_secure_when_configured_for_https(client, monkeypatch):
    monkeypatch.setitem(client.application.config, "SESSION_COOKIE_SECURE", True)
    _, email = make_user(client.application, "staff")
    response = sign_in(client, email)

    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_staff_pages_are_never_cached(client):
    signed_in(client, "staff")
    assert client.get("/staff/").headers["Cache-Control"] == "no-store"


# -- signing out -------------------------------------------------------------------------------------

def test_sign_out_by_get_is_405_and_signs_nothing_out(client):
    signed_in(client, "staff")

    assert client.get("/staff/logout").status_code == 405
    assert client.get("/staff/").status_code == 200


def test_sign_out_without_csrf_token_is_400_and_signs_nothing_out(client):
    staff = signed_in(client, "staff")

    assert staff.post("/staff/logout", csrf=False).status_code == 400
    assert client.get("/staff/").status_code == 200
    assert open_sessions(client.application, staff.id)


def test_sign_out_ends_the_session(client):
    staff = signed_in(client, "staff")
    sid = session_value(client, "staff_sid")

    response = staff.post("/staff/logout")

    assert is_sign_in_redirect(response)
    assert is_sign_in_redirect(client.get("/staff/"))
    assert ended_at(client.application, sid) is not None
    assert session_value(client, "staff_sid") is None


def test_a_copy_of_the_session_cookie_stops_working_after_sign_out(client):
    app = client.application
    staff = signed_in(client, "staff")
    copied = session_cookie(client)
    assert browser_with_cookie(app, copied).get("/staff/").status_code == 200  # the copy works until then

    staff.post("/staff/logout")

    assert is_sign_in_redirect(browser_with_cookie(app, copied).get("/staff/"))


def test_sign_out_then_sign_in_again_works(client):
    staff = signed_in(client, "staff")
    staff.post("/staff/logout")

    assert sign_in(client, staff.email).status_code == 303
    assert client.get("/staff/").status_code == 200


# -- deactivation, role changes, timeouts ------------------------------------------------------------

def test_deactivating_a_user_ends_their_open_sessions(client):
    app = client.application
    admin = signed_in(client, "admin")
    colleague = signed_in(app.test_client(), "staff")
    laptop_cookie = session_cookie(colleague.client)
    assert colleague.get("/staff/").status_code == 200

    response = admin.post(f"/staff/users/{colleague.id}", {"role": "staff", "active": "0"})

    assert response.status_code == 303
    assert user_state(app, colleague.id) == ("staff", False)
    assert open_sessions(app, colleague.id) == []
    assert is_sign_in_redirect(colleague.get("/staff/"))
    assert is_sign_in_redirect(browser_with_cookie(app, laptop_cookie).get("/staff/"))
    assert sign_in(app.test_client(), colleague.email).status_code == 401


def test_changing_a_users_role_ends_their_sessions_so_it_applies_at_once(client):
    app = client.application
    admin = signed_in(client, "admin")
    colleague = signed_in(app.test_client(), "staff")

    admin.post(f"/staff/users/{colleague.id}", {"role": "accountant", "active": "1"})

    assert is_sign_in_redirect(colleague.get("/staff/"))
    assert sign_in(colleague.client, colleague.email).status_code == 303
    assert colleague.get("/staff/emails").status_code == 403  # now an accountant


def test_an_admin_cannot_deactivate_or_demote_themselves(client):
    admin = signed_in(client, "admin")

    admin.post(f"/staff/users/{admin.id}", {"role": "admin", "active": "0"})
    admin.post(f"/staff/users/{admin.id}", {"role": "staff", "active": "1"})

    assert user_state(client.application, admin.id) == ("admin", True)
    assert client.get("/staff/users").status_code == 200


def test_idle_session_ends_after_the_idle_timeout(client):
    app = client.application
    signed_in(client, "staff")
    sid = session_value(client, "staff_sid")

    move_session_back(app, sid, last_seen=timedelta(minutes=app.config["STAFF_IDLE_MINUTES"], seconds=5))

    assert is_sign_in_redirect(client.get("/staff/"))
    assert ended_at(app, sid) is not None


def test_idle_timeout_follows_the_setting(client, monkeypatch):
    app = client.application
    monkeypatch.setitem(app.config, "STAFF_IDLE_MINUTES", 5)
    signed_in(client, "staff")
    sid = session_value(client, "staff_sid")

    move_session_back(app, sid, last_seen=timedelta(minutes=6))

    assert is_sign_in_redirect(client.get("/staff/"))


def test_a_session_in_use_is_not_idle(client):
    app = client.application
    signed_in(client, "staff")
    sid = session_value(client, "staff_sid")
    idle = app.config["STAFF_IDLE_MINUTES"]

    move_session_back(app, sid, last_seen=timedelta(minutes=idle - 5))
    assert client.get("/staff/").status_code == 200  # activity moves last_seen_at forward…
    move_session_back(app, sid, last_seen=timedelta(minutes=idle - 5))
    assert client.get("/staff/").status_code == 200  # …so twice "almost idle" is still not idle


def test_session_ends_after_the_absolute_timeout_even_when_in_use(client):
    app = client.application
    signed_in(client, "staff")
    sid = session_value(client, "staff_sid")

    move_session_back(app, sid, created=timedelta(hours=app.config["STAFF_ABSOLUTE_HOURS"], minutes=1))

    assert is_sign_in_redirect(client.get("/staff/"))
    assert ended_at(app, sid) is not None


def test_session_younger_than_the_absolute_timeout_still_works(client):
    app = client.application
    signed_in(client, "staff")
    sid = session_value(client, "staff_sid")

    move_session_back(app, sid, created=timedelta(hours=app.config["STAFF_ABSOLUTE_HOURS"] - 1))

    assert client.get("/staff/").status_code == 200


def test_a_session_of_another_user_is_not_accepted(client):
    """The cookie names both the user and the server-side session; they must belong together."""
    app = client.application
    signed_in(client, "staff")
    other = signed_in(app.test_client(), "admin")
    with client.session_transaction() as sess:
        sess["_user_id"] = str(other.id)  # (a cookie is signed, so this needs the secret key)

    assert is_sign_in_redirect(client.get("/staff/users"))


def test_passwords_are_stored_as_argon2id(app_ctx):
    assert hash_password("correct horse battery staple").startswith("$argon2id$")


@pytest.mark.parametrize("role", ["admin", "staff", "accountant"])
def test_every_role_can_sign_in_and_sees_its_role(client, role):
    staff = signed_in(client, role)
    html = client.get("/staff/").get_data(as_text=True)
    assert f"{staff.email} ({role})" in html
    assert ('href="/staff/users"' in html) is (role == "admin")
