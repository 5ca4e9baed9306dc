"""Sending the outbox: SMTP when SMTP_URL is set, otherwise the log. Failures are retried with backoff;
a 5xx refusal of a message fails it at once, for staff to see and resend."""
from __future__ import annotations

import logging
import secrets
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy import case, select, update

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


#: What build_message reads of an outbox row.
_MESSAGE_COLUMNS = (OutboxEmail.id, OutboxEmail.to_address, OutboxEmail.subject, OutboxEmail.message_id,
                    OutboxEmail.created_at, OutboxEmail.body_text, OutboxEmail.body_html, OutboxEmail.attachments)


def build_message(email: OutboxEmail, sender: str) -> EmailMessage:
    """The MIME message for an outbox row (the model, or a row of _MESSAGE_COLUMNS); its attachments are
    rendered now (AttachmentError if one fails)."""
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

    The due emails are claimed first (see ``_claim``) and the claim is committed before anything
    is sent; then each email is marked as being sent, handed to the server, and marked with its
    outcome. A sender that dies mid-batch leaves its claimed emails to be retried after CLAIM; one
    that dies while the server held a message leaves the mark that makes the next claimer count a
    possible duplicate.

    One commit per email, not two: the outcome of an email the server accepted is written in the
    transaction that marks the next one as being sent (or in the batch's last one). A sender that
    dies in between leaves the accepted email marked, which counts it as a possible duplicate, as
    dying between the send and its own commit always did. The batch is read in one query and kept
    out of the session, so that these commits do not make every email load again.
    """
    now = now or now_utc()
    token = secrets.token_hex(8)
    claimed = _claim(now, limit, token)
    db.session.commit()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    if not claimed:
        return counts
    sender = current_app.config["MAIL_FROM"]
    # Plain rows, not ORM objects: nothing for the commits below to expire and load again.
    unsent = db.session.execute(select(*_MESSAGE_COLUMNS).where(OutboxEmail.id.in_(claimed))
                                .order_by(OutboxEmail.id.desc())).all()  # popped from the end: oldest first
    accepted: tuple[int, datetime] | None = None  # the server took it; its outcome goes into the next commit

    def book_accepted() -> None:
        nonlocal accepted
        if accepted is not None:
            email_id, sent_at = accepted
            db.session.execute(
                update(OutboxEmail).where(OutboxEmail.id == email_id)
                .values(status=EmailStatus.SENT, sent_at=sent_at, attempts=OutboxEmail.attempts + 1,
                        send_started_at=None)
                .execution_options(synchronize_session=False))
            accepted = None

    try:
        with transport() as connection:
            while unsent:
                email = unsent[-1]
                try:
                    message = build_message(email, sender)
                except Exception as exc:
                    # An attachment that fails to render, or a header Python refuses (a line break in an
                    # address or subject): this email only, never the rest of the batch. A renderer may have
                    # failed inside the database; start clean before booking the failure.
                    db.session.rollback()
                    if not isinstance(exc, AttachmentError):
                        log.exception("email %s could not be built", email.id)
                    book_accepted()
                    counts[_failed(_row(email.id), exc, now)] += 1
                    unsent.pop()
                    db.session.commit()
                    continue
                mine = _mark_sending(email.id, token)
                book_accepted()
                db.session.commit()  # the mark is stored before the message goes out
                if not mine:
                    # The claim ran out while this batch was slow, and another sender took the email.
                    log.warning("email %s: its claim passed to another sender; not sending it here", email.id)
                    unsent.pop()
                    continue
                try:
                    connection.send(message)
                except (OSError, smtplib.SMTPException) as exc:
                    if isinstance(exc, smtplib.SMTPSenderRefused):
                        raise  # our sender address is refused: a setup problem, every email waits
                    row = _row(email.id)
                    counts[_failed(row, exc, now, per_message=True)] += 1
                    unsent.pop()
                    if smtp_reply(exc) is None:
                        # The connection went while the message was on its way, so the server may have
                        # it: the mark stays for the next try to count a possible duplicate; the rest wait.
                        db.session.commit()
                        raise
                    row.send_started_at = None
                    db.session.commit()
                else:
                    accepted = (email.id, now_utc())
                    counts["sent"] += 1
                    unsent.pop()
            book_accepted()
            db.session.commit()
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        # The server could not be reached, refused our sender, or went away: every email left waits.
        book_accepted()
        rows = db.session.scalars(select(OutboxEmail).where(OutboxEmail.id.in_([e.id for e in unsent]))
                                  .order_by(OutboxEmail.id)).all() if unsent else []
        for row in rows:
            row.send_started_at = None
            counts[_failed(row, exc, now)] += 1
        db.session.commit()
    return counts


def _row(email_id: int) -> OutboxEmail:
    """The email as stored, in the session, to book a failure on."""
    return db.session.get(OutboxEmail, email_id)


def _mark_sending(email_id: int, token: str) -> bool:
    """Mark the email as being sent only if this sender still holds its claim (a slow batch may have
    outlived it, and another sender taken the email over); the caller commits before the message goes out."""
    return db.session.execute(
        update(OutboxEmail).where(OutboxEmail.id == email_id, OutboxEmail.claimed_by == token,
                                  OutboxEmail.status == EmailStatus.PENDING)
        .values(send_started_at=now_utc())
        .execution_options(synchronize_session=False)).rowcount == 1


def _claim(now: datetime, limit: int, token: str) -> list[int]:
    """Take up to ``limit`` due emails for this sender: their next try moves CLAIM ahead, so no other
    sender takes them while this one works, and they come back by themselves if it dies.

    On PostgreSQL the rows are locked with SKIP LOCKED, so concurrent senders never wait for each
    other and never take the same email. SQLite has no row locks but runs one writer at a time,
    so there a conditional UPDATE per email is won by one sender only.
    An email still marked as being sent was left by a sender that stopped mid-send: it is counted
    as a possible duplicate, since the server may have accepted it already.
    """
    due = (OutboxEmail.status == EmailStatus.PENDING, OutboxEmail.next_attempt_at <= now)
    oldest = select(OutboxEmail.id).where(*due).order_by(OutboxEmail.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        claimed = list(db.session.scalars(oldest.with_for_update(skip_locked=True)))
    else:
        claimed = [
            email_id for email_id in db.session.scalars(oldest).all()
            if db.session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id, *due)
                                  .values(next_attempt_at=now + CLAIM)).rowcount == 1
        ]
    if claimed:
        stopped = list(db.session.scalars(select(OutboxEmail.id).where(
            OutboxEmail.id.in_(claimed), OutboxEmail.send_started_at.is_not(None))))
        stopped_mid_send = case((OutboxEmail.send_started_at.is_not(None), 1), else_=0)
        db.session.execute(
            update(OutboxEmail).where(OutboxEmail.id.in_(claimed))
            .values(next_attempt_at=now + CLAIM, send_started_at=None, claimed_by=token,
                    possible_duplicates=OutboxEmail.possible_duplicates + stopped_mid_send)
            .execution_options(synchronize_session=False))  # the commit that follows expires what was loaded
        for email_id in stopped:
            log.warning("email %s is sent again after a sender stopped while sending it: it may arrive twice",
                        email_id)
    return claimed


def smtp_reply(exc: BaseException) -> tuple[int, str] | None:
    """The server's reply (code, text) carried by an SMTP error, or None (a lost connection, a timeout)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, text = next(iter(exc.recipients.values()))  # one recipient per email
        return code, _text(text)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, _text(exc.smtp_error)
    return None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _failed(email: OutboxEmail, exc: Exception, now: datetime, *, per_message: bool = False) -> str:
    """Book a failed try. A 5xx answer to this very message (a refused recipient, sender or content) is
    permanent: retrying would get the same answer, so the email fails at once for staff to see and
    resend. 4xx answers, lost connections and errors before any message was sent are retried."""
    email.attempts += 1
    reply = smtp_reply(exc)
    if reply is not None:
        email.last_error = f"{type(exc).__name__}: {reply[0]} {reply[1]}"[:2000]
    else:
        email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    permanent = per_message and reply is not None and reply[0] >= 500
    if permanent or email.attempts >= MAX_ATTEMPTS:
        email.status = EmailStatus.FAILED
        log.error("email %s to %s failed for good%s: %s", email.id, email.to_address,
                  " (the server refused it)" if permanent else "", email.last_error)
        return "failed"
    email.next_attempt_at = now + backoff(email.attempts)
    log.warning("email %s to %s failed (try %s), retrying at %s: %s", email.id, email.to_address,
                email.attempts, email.next_attempt_at, email.last_error)
    return "retry"


def requeue(email: OutboxEmail) -> None:
    """Send a failed email again, now: the same row, so the same Message-ID (a receiving server that
    did get it can drop the copy), with a fresh round of tries. The last error stays until a try ends."""
    email.status = EmailStatus.PENDING
    email.attempts = 0
    email.next_attempt_at = now_utc()
