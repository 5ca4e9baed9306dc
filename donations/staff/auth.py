"""Staff sign-in: Argon2id passwords, server-side sessions with idle and absolute timeouts, roles."""
from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, has_request_context, request, session
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy import select, update

from ..db import now_utc
from ..extensions import db
from ..security.ip import client_ip_hash
from .models import AuditEntry, Role, StaffSession, StaffUser

login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = "Please sign in."

A, S, C = Role.ADMIN, Role.STAFF, Role.ACCOUNTANT
#: Who may do what. Every staff route names one of these; anything else gets 403.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "dashboard": frozenset({A, S, C}),
    "supporters.read": frozenset({A, S, C}),
    "supporters.write": frozenset({A, S}),
    # GDPR access and erasure for a supporter: the whole of their personal data, or its end.
    "supporters.privacy": frozenset({A, S}),
    "donations.read": frozenset({A, S, C}),
    "donations.refund": frozenset({A, S}),
    "campaigns.read": frozenset({A, S, C}),
    "campaigns.write": frozenset({A, S}),
    # Counts and sums per article: no personal data, read by whoever plans the asks or the budget.
    "articles.read": frozenset({A, S, C}),
    "emails.read": frozenset({A, S}),
    "emails.write": frozenset({A, S}),
    "audit.read": frozenset({A, S, C}),
    "reports.read": frozenset({A, C}),
    "books.close": frozenset({A, C}),
    "reports.schedule": frozenset({A}),
    "statements.reissue": frozenset({A, S, C}),
    # Read-only health of the scheduler: counts and the first line of an error, no personal data; the
    # accountant relies on the books and exports jobs as much as the staff rely on the outbox.
    "jobs.read": frozenset({A, S, C}),
    # Ending attack mode by hand lets gifts through without the CAPTCHA again: a security decision.
    "jobs.attack_mode": frozenset({A}),
    "users.read": frozenset({A}),
    "users.write": frozenset({A}),
}


def hasher() -> PasswordHasher:
    """Argon2id with RFC 9106's low-memory profile (64 MiB, t=3, p=4): above OWASP's minimums."""
    profile = getattr(profiles, current_app.config["ARGON2_PROFILE"])
    return PasswordHasher.from_parameters(profile)


def hash_password(password: str) -> str:
    return hasher().hash(password)


def check_password(user: StaffUser | None, password: str) -> bool:
    """True only for an active user with this password. Unknown users cost the same time."""
    ph = hasher()
    try:
        ok = ph.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    if user is None or not user.active:
        return False
    if ph.check_needs_rehash(user.password_hash):
        user.password_hash = ph.hash(password)
    return ok


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("staff_dummy_hash", {})
    profile = current_app.config["ARGON2_PROFILE"]
    if profile not in cache:
        cache[profile] = hasher().hash(secrets.token_hex(16))
    return cache[profile]


def audit(action: str, object_type: str | None = None, object_id: object = None, *, outcome: str = "ok",
          actor: StaffUser | None = None, **detail) -> None:
    """Write one audit entry in the current transaction."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    db.session.add(AuditEntry(
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else detail.pop("email", None),
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        outcome=outcome,
        ip_hash=client_ip_hash(),
        detail=detail,
    ))


def start_session(user: StaffUser) -> None:
    """Sign in: a fresh session (nothing carried over from before), backed by a new server-side row."""
    end_session()  # a sign-in over an open session ends that one first
    sid = secrets.token_urlsafe(32)
    db.session.add(StaffSession(id=sid, user_id=user.id, ip_hash=client_ip_hash()))
    user.last_login_at = now_utc()
    session["staff_sid"] = sid
    login_user(user)


def end_session() -> None:
    sid = session.get("staff_sid")
    if sid:
        db.session.execute(update(StaffSession).where(StaffSession.id == sid, StaffSession.ended_at.is_(None))
                           .values(ended_at=now_utc()))
    logout_user()
    session.clear()


def end_all_sessions(user: StaffUser) -> None:
    db.session.execute(update(StaffSession).where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
                       .values(ended_at=now_utc()))


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    """The signed-in user, only while their server-side session is open, fresh and theirs."""
    sid = session.get("staff_sid")
    if not sid:
        return None
    row = db.session.get(StaffSession, sid)
    now = now_utc()
    idle = timedelta(minutes=current_app.config["STAFF_IDLE_MINUTES"])
    absolute = timedelta(hours=current_app.config["STAFF_ABSOLUTE_HOURS"])
    if (row is None or row.ended_at is not None or str(row.user_id) != user_id or not row.user.active
            or now - row.last_seen_at > idle or now - row.created_at > absolute):
        if row is not None and row.ended_at is None:
            row.ended_at = now
            db.session.commit()
        return None
    if now - row.last_seen_at > timedelta(seconds=60):  # write at most once a minute
        row.last_seen_at = now
        db.session.commit()
    return row.user


def require(permission: str):
    """Only signed-in staff whose role has ``permission``; others are sent to sign in or get 403 (audited)."""
    roles = PERMISSIONS[permission]

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                audit("denied", request.endpoint, request.view_args and next(iter(request.view_args.values()), None),
                      outcome="denied", method=request.method, path=request.path, permission=permission)
                db.session.commit()
                abort(403)
            return view(*args, **kwargs)

        wrapped.permission = permission
        return wrapped

    return decorator


def find_user(email: str) -> StaffUser | None:
    return db.session.scalars(select(StaffUser).where(StaffUser.email == email.strip().lower())).one_or_none()


def create_user(email: str, role: Role, password: str) -> StaffUser:
    """A new staff user; the caller checks the password's strength and the address's uniqueness."""
    user = StaffUser(email=email.strip().lower(), role=role, password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    return user


MIN_PASSWORD = 12


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > 256:
        return "Use at most 256 characters."
    return None
