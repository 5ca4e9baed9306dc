"""Sending the outbox: SMTP when SMTP_URL is set, otherwise the log. Failures are retried with backoff."""
from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy import select, update

from ..db import now_utc
from ..extensions import db
from .attachments import AttachmentError, render
from .models import EmailStatus, OutboxEmail

log = logging.getLogger(__name__)

#: After this many failed tries an email is marked failed, for staff to see.
MAX_ATTEMPTS = 12
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)
#: How long a sender holds the emails it claimed; if it dies, others retry them after this.
CLAIM = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    exponent = min(max(attempts - 1, 0), 20)  # 2**20 × 30 s is far past the cap already
    return min(BACKOFF_BASE * 2**exponent, BACKOFF_CAP)


def build_message(email: OutboxEmail, sender: str) -> EmailMessage:
    """The MIME message for an outbox row; its attachments are rendered now (AttachmentError if one fails)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message["Message-ID"] = email.message_id
    message["Date"] = format_datetime(email.created_at)
    message.set_content(email.body_text)
    message.add_alternative(email.body_html, subtype="html")
    for spec in email.attachments or ():
        filename, mimetype, data = render(spec)
        maintype, _, subtype = mimetype.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


class LogTransport:
    """No SMTP configured: the email stays in the outbox and its text goes to the log."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send(self, message: EmailMessage) -> None:
        log.info("email (no SMTP_URL set) to %s: %s\n%s", message["To"], message["Subject"],
                 message.get_body(("plain",)).get_content())


@dataclass
class SMTPTransport:
    """One connection for a batch. ``smtp://user:pass@host:port`` (STARTTLS when offered) or ``smtps://``."""

    url: str
    timeout: float = 30

    def __enter__(self):
        parts = urlsplit(self.url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        host = parts.hostname or "localhost"
        if parts.scheme == "smtps":
            self.conn = smtplib.SMTP_SSL(host, parts.port or 465, timeout=self.timeout)
        else:
            self.conn = smtplib.SMTP(host, parts.port or 25, timeout=self.timeout)
            self.conn.ehlo()
            if self.conn.has_extn("starttls"):
                self.conn.starttls()
                self.conn.ehlo()
            elif parts.username:  # never send a password in clear because a server (or an attacker) says so
                raise smtplib.SMTPException("the SMTP server offers no STARTTLS; refusing to send credentials")
        if parts.username:
            self.conn.login(unquote(parts.username), unquote(parts.password or ""))
        return self

    def __exit__(self, *exc):
        try:
            self.conn.quit()
        except (OSError, smtplib.SMTPException):
            self.conn.close()
        return False

    def send(self, message: EmailMessage) -> None:
        self.conn.send_message(message)


def transport():
    url = current_app.config["SMTP_URL"]
    return SMTPTransport(url) if url else LogTransport()


def send_due(now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Send every email whose time has come, each exactly once however many senders run.

    Each email is first claimed by an UPDATE that only one sender can win (its next try moves
    CLAIM ahead), committed before anything is sent; then each is marked sent and committed on
    its own. A sender that dies mid-batch leaves its claimed emails to be retried after CLAIM.
    """
    now = now or now_utc()
    due = (OutboxEmail.status == EmailStatus.PENDING, OutboxEmail.next_attempt_at <= now)
    candidates = list(db.session.scalars(select(OutboxEmail.id).where(*due).order_by(OutboxEmail.id).limit(limit)))
    claimed = [
        email_id for email_id in candidates
        if db.session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id, *due)
                              .values(next_attempt_at=now + CLAIM)).rowcount == 1
    ]
    db.session.commit()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    if not claimed:
        return counts
    sender = current_app.config["MAIL_FROM"]
    unsent = [db.session.get(OutboxEmail, email_id) for email_id in claimed]
    try:
        with transport() as connection:
            while unsent:
                email = unsent[0]
                try:
                    message = build_message(email, sender)
                except Exception as exc:
                    # An attachment that fails to render, or a header Python refuses (a line break in an
                    # address or subject): this email only, never the rest of the batch. A renderer may have
                    # failed inside the database; start clean before booking the failure.
                    db.session.rollback()
                    if not isinstance(exc, AttachmentError):
                        log.exception("email %s could not be built", email.id)
                    counts[_failed(email, exc, now)] += 1
                    unsent.pop(0)
                    db.session.commit()
                    continue
                try:
                    connection.send(message)
                except (OSError, smtplib.SMTPException) as exc:
                    counts[_failed(email, exc, now)] += 1
                else:
                    email.status = EmailStatus.SENT
                    email.sent_at = now_utc()
                    email.attempts += 1
                    counts["sent"] += 1
                unsent.pop(0)
                db.session.commit()
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        # The server could not be reached at all: every email of the batch waits for its next try.
        for email in unsent:
            counts[_failed(email, exc, now)] += 1
        db.session.commit()
    return counts


def _failed(email: OutboxEmail, exc: Exception, now: datetime) -> str:
    email.attempts += 1
    email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if email.attempts >= MAX_ATTEMPTS:
        email.status = EmailStatus.FAILED
        log.error("email %s to %s failed for good: %s", email.id, email.to_address, exc)
        return "failed"
    email.next_attempt_at = now + backoff(email.attempts)
    log.warning("email %s to %s failed (try %s), retrying at %s: %s", email.id, email.to_address,
                email.attempts, email.next_attempt_at, exc)
    return "retry"
