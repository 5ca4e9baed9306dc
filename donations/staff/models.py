"""Staff users, their server-side sessions, the append-only audit log, and the dashboard's snapshots."""
from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..db import enum_column, now_utc
from ..extensions import db


class Role(enum.StrEnum):
    ADMIN = "admin"  #: everything, including users
    STAFF = "staff"  #: supporters, donations, refunds, campaigns, resending receipts
    ACCOUNTANT = "accountant"  #: reports and exports; reads donations; changes nothing


class StaffUser(db.Model):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: Argon2id, in the PHC string format that argon2-cffi writes.
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role, "staff_role"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    last_login_at: Mapped[datetime | None]

    sessions: Mapped[list[StaffSession]] = relationship(back_populates="user")

    # Flask-Login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class StaffSession(db.Model):
    """A signed-in browser. The cookie holds only this row's random id, so logging out, a
    deactivation or a timeout ends the session for real: a copied cookie no longer works."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    last_seen_at: Mapped[datetime] = mapped_column(default=now_utc)
    ended_at: Mapped[datetime | None]
    #: Keyed hash of the address it signed in from (security/ip.py), never the address itself.
    ip_hash: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[StaffUser] = relationship(back_populates="sessions")


class AuditEntry(db.Model):
    """Who did what to which object, when and from where; written, never changed."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=now_utc, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), index=True)
    #: Kept as written, so the entry still says who it was if the user changes later.
    actor_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255))
    #: ``ok`` or ``denied``.
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    #: Keyed hash of the address (security/ip.py), never the address itself.
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class AuditLogIsAppendOnly(RuntimeError):
    pass


#: The only columns a redaction may change: personal data inside an entry (GDPR erasure) and the hashed
#: address (IP retention). Who acted, what, on which object, when and with which outcome stay as written.
REDACTABLE = frozenset({"detail", "note", "ip_hash", "actor_email"})
_redacting: ContextVar[bool] = ContextVar("audit_redacting", default=False)


@contextmanager
def audit_redaction() -> Iterator[None]:
    """The one way to change audit entries: inside this block, entries loaded through the ORM may have
    their REDACTABLE columns changed, one by one (never deleted, never a bulk UPDATE). Used only by
    erasure and IP retention (donations.security.privacy)."""
    token = _redacting.set(True)
    try:
        yield
    finally:
        _redacting.reset(token)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state):
    if (state.is_update or state.is_delete) and any(m.class_ is AuditEntry for m in state.all_mappers):
        raise AuditLogIsAppendOnly("audit entries are never changed or deleted")


@event.listens_for(AuditEntry, "before_update")
def _refuse_changes(mapper, connection, target):
    if _redacting.get():
        state = inspect(target)
        changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
        if changed <= REDACTABLE:
            return
        raise AuditLogIsAppendOnly(f"a redaction may change only {sorted(REDACTABLE)}, not {sorted(changed)}")
    raise AuditLogIsAppendOnly("audit entries are never changed or deleted")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_deletes(mapper, connection, target):
    raise AuditLogIsAppendOnly("audit entries are never changed or deleted")


class DashboardSnapshot(db.Model):
    """The dashboard's money raised over the donations paid before ``day`` (UTC) with ids up to ``watermark``.

    Exact, never stale: a paid donation stays paid, and its amount, currency, paid_at, campaign and article never
    change, so the page adds to these totals the donations the snapshot did not see (paid on or after ``day``,
    id above ``watermark``, or pending when it was taken) from the donations themselves. Computed by the
    ``staff.dashboard_snapshot`` job (donations.staff.operations.take_dashboard_snapshot)."""

    __tablename__ = "dashboard_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The UTC day the snapshot ends before.
    day: Mapped[date] = mapped_column(unique=True)
    #: Every donation with an id up to this one was committed when the snapshot was taken.
    watermark: Mapped[int] = mapped_column(BigInteger)
    #: Ids (up to the watermark) of donations pending when the snapshot was taken: left to the live part.
    pending_ids: Mapped[list[int]] = mapped_column(JSON)
    #: The first day ``days`` covers: 1 January or the first day of the 12-month chart, the earlier.
    since: Mapped[date]
    #: The first day of the 12-month chart on ``day``: ``campaigns`` and the articles cover [window_start, day).
    window_start: Mapped[date]
    #: {currency: {"YYYY-MM-DD": [minor units, gifts]}} for the days in [since, day) with gifts.
    days: Mapped[dict] = mapped_column(JSON)
    #: {currency: {campaign id: minor units}} over [window_start, day).
    campaigns: Mapped[dict] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(default=now_utc)


class DashboardSnapshotArticle(db.Model):
    """Money raised per article and currency over a snapshot's [window_start, day): every article, so that adding
    the live part keeps the dashboard's top articles exact."""

    __tablename__ = "dashboard_snapshot_articles"
    __table_args__ = (
        Index("ix_dashboard_snapshot_articles_place", "snapshot_id", "place"),
        Index("ix_dashboard_snapshot_articles_article", "snapshot_id", "article_url"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("dashboard_snapshots.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    article_url: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    #: 1 for the article that raised most in its currency, then 2…: the page reads only the first few.
    place: Mapped[int]
