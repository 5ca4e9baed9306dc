"""Sending the outbox: SMTP when SMTP_URL is set, otherwise the log. Failures are retried with backoff;
a 5xx refusal of a message fails it at once, for staff to see and resend."""
from __future__ import annotations

import functools
import logging
import secrets
import smtplib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import encoders
from email.header import Header
from email._policybase import Compat32
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, getaddresses
from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy import Engine, bindparam, case, select, text, update

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
#: Emails marked as being sent in one commit, and how long such marks may wait for their sending: longer
#: (a slow server), and the rest are marked again, their claim checked again, before they go out.
MARK_GROUP = 50
MARK_SECONDS = 10.0


def backoff(attempts: int) -> timedelta:
    exponent = min(max(attempts - 1, 0), 20)  # 2**20 × 30 s is far past the cap already
    return min(BACKOFF_BASE * 2**exponent, BACKOFF_CAP)


#: What build_message reads of an outbox row.
_MESSAGE_COLUMNS = (OutboxEmail.id, OutboxEmail.to_address, OutboxEmail.subject, OutboxEmail.message_id,
                    OutboxEmail.created_at, OutboxEmail.body_text, OutboxEmail.body_html, OutboxEmail.attachments)


class _OneLineHeaders(Compat32):
    """compat32, except that a header which fits on one line as it is gets written as it is.

    compat32 hands every header, however short, to email.header.Header to be folded: some dozen per email, the
    most costly part of putting a message on the wire. Header leaves a printable ASCII value with single spaces
    that fits in max_line_length unchanged, so such a value is written straight; anything else (a long value, a
    Header of encoded words, other whitespace) is folded by compat32 as before, so the bytes never differ."""

    def _fold(self, name, value, sanitize):
        if (isinstance(value, str) and value.isascii() and value.isprintable()
                and len(name) + 2 + len(value) <= (self.max_line_length or 0)
                and value == " ".join(value.split())):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


_POLICY = _OneLineHeaders()


class _Utf8Header:
    """A header value that is not ASCII, written as compat32 writes ``Header(text, "utf-8")`` (RFC 2047 encoded
    words), but encoded once per distinct text and line ending: finding where to split the encoded words takes a
    pass over the text per character, and receipts share a handful of subjects."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def encode(self, linesep: str = "\n", maxlinelen: int | None = None) -> str:
        return _encoded_header(self.text, linesep, maxlinelen)


@functools.lru_cache(maxsize=1024)
def _encoded_header(text: str, linesep: str, maxlinelen: int | None) -> str:
    return Header(text, "utf-8").encode(linesep=linesep, maxlinelen=maxlinelen)


def _boundary() -> str:
    return f"=_{secrets.token_hex(12)}"  # "_" is not base64


def build_message(email: OutboxEmail, sender: str) -> Message:
    """The MIME message for an outbox row (the model, or a row of _MESSAGE_COLUMNS); its attachments are
    rendered now (AttachmentError if one fails).

    Built with the classic email.mime classes, whose headers are plain strings: the modern EmailMessage parses
    every header it is given and every one its parts set (some fifteen per email), which took most of the
    sender's time per email. Only an address that is not ASCII (SMTPUTF8, which only the modern API sends)
    takes that slower road."""
    for value in (sender, email.to_address, email.subject, email.message_id):
        if "\r" in value or "\n" in value:
            raise ValueError(f"a line break in a header: {value[:80]!r}")  # never a header of our choosing
    if not (sender.isascii() and email.to_address.isascii()):
        return _build_international(email, sender)
    # The generator writes every part with the message's policy. Boundaries of our own: one the generator chose
    # would be checked against the text with a regular expression compiled anew for each email; every part
    # below is base64, whose lines never begin with "--", so no part can hold a line that looks like one.
    body = MIMEMultipart("alternative", boundary=_boundary(), policy=_POLICY)
    body.attach(MIMEText(email.body_text, "plain", "utf-8", policy=_POLICY))
    body.attach(MIMEText(email.body_html, "html", "utf-8", policy=_POLICY))
    files = [render(spec) for spec in email.attachments or ()]
    message = body
    if files:
        message = MIMEMultipart("mixed", boundary=_boundary(), policy=_POLICY)
        message.attach(body)
        for filename, mimetype, data in files:
            maintype, _, subtype = mimetype.partition("/")
            part = MIMEBase(maintype, subtype, policy=_POLICY)
            part.set_payload(data)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=filename)
            message.attach(part)
    message["From"] = sender
    message["To"] = email.to_address
    message["Subject"] = email.subject if email.subject.isascii() else _Utf8Header(email.subject)
    message["Message-ID"] = email.message_id
    message["Date"] = format_datetime(email.created_at)
    return message


def _build_international(email: OutboxEmail, sender: str) -> EmailMessage:
    """The same message through the modern API, for addresses that need SMTPUTF8."""
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


def plain_text(message: Message) -> str:
    """The text/plain body of a message built here."""
    part = next(part for part in message.walk() if part.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


class LogTransport:
    """No SMTP configured: the email stays in the outbox and its text goes to the log."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send(self, message: Message) -> None:
        log.info("email (no SMTP_URL set) to %s: %s\n%s", message["To"], message["Subject"], plain_text(message))


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
        self._from_header = self._from_address = None
        return self

    def __exit__(self, *exc):
        try:
            self.conn.quit()
        except (OSError, smtplib.SMTPException):
            self.conn.close()
        return False

    def send(self, message: Message) -> None:
        # The envelope's sender is the same for a whole batch: parsed once, not by send_message for every email.
        sender = str(message["From"])
        if sender != self._from_header:
            self._from_header, self._from_address = sender, getaddresses([sender])[0][1]
        recipients = [address for _, address in getaddresses([str(message["To"])])]
        self.conn.send_message(message, self._from_address, recipients)


def transport():
    url = current_app.config["SMTP_URL"]
    return SMTPTransport(url) if url else LogTransport()


def send_due(now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Send every email whose time has come, each exactly once however many senders run.

    The due emails are claimed first (see ``_claim``) and the claim is committed before anything
    is sent; then the emails are marked as being sent, handed to the server, and each marked with
    its outcome. A sender that dies mid-batch leaves its claimed emails to be retried after CLAIM;
    one that dies while the server held a message leaves the mark that makes the next claimer count
    a possible duplicate.

    The marks go in groups (MARK_GROUP emails, one commit that waits for the disk), so a dead sender
    may leave marked emails it never sent, counted as possible duplicates too: the count is a bound,
    never short. Each outcome is committed on its own as soon as the server has answered, in one round
    trip on a connection kept for the batch (see ``_sent_book``), without waiting for the disk: were
    PostgreSQL to lose it in a crash, the mark still stands, so the email is sent again and counted.
    The batch is read in one query as plain rows, so that these commits do not make every email load again.
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
                                .order_by(OutboxEmail.id)).all()
    try:
        with transport() as connection, _sent_book() as book_sent:
            while unsent:
                group = []
                for email in unsent[:MARK_GROUP]:
                    try:
                        group.append((email, build_message(email, sender)))
                    except Exception as exc:
                        # An attachment that fails to render, or a header Python refuses (a line break in an
                        # address or subject): this email only, never the rest of the batch. A renderer may
                        # have failed inside the database; start clean before booking the failure.
                        db.session.rollback()
                        if not isinstance(exc, AttachmentError):
                            log.exception("email %s could not be built", email.id)
                        counts[_failed(_row(email.id), exc, now)] += 1
                        unsent.remove(email)
                        db.session.commit()
                if not group:
                    continue
                mine = _mark_sending([email.id for email, _ in group], token)
                db.session.commit()  # the marks are stored before any of these messages goes out
                marked_at = time.monotonic()
                for index, (email, message) in enumerate(group):
                    if index and time.monotonic() - marked_at > MARK_SECONDS:
                        break  # a slow server: the rest are marked again, and their claim checked, first
                    unsent.remove(email)
                    if email.id not in mine:
                        # The claim ran out while this batch was slow, and another sender took the email.
                        log.warning("email %s: its claim passed to another sender; not sending it here", email.id)
                        continue
                    try:
                        connection.send(message)
                    except (OSError, smtplib.SMTPException) as exc:
                        if isinstance(exc, smtplib.SMTPSenderRefused):
                            unsent.insert(0, email)  # not sent: it waits with the rest
                            raise  # our sender address is refused: a setup problem, every email waits
                        row = _row(email.id)
                        counts[_failed(row, exc, now, per_message=True)] += 1
                        if smtp_reply(exc) is None:
                            # The connection went while the message was on its way, so the server may have
                            # it: the mark stays for the next try to count a possible duplicate; the rest wait.
                            db.session.commit()
                            raise
                        row.send_started_at = None
                        db.session.commit()
                    else:
                        book_sent(email.id)
                        counts["sent"] += 1
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        # The server could not be reached, refused our sender, or went away: every email left waits.
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


def _mark_sending(email_ids: list[int], token: str) -> set[int]:
    """Mark the emails as being sent, those this sender still holds the claim of (a slow batch may have
    outlived it, and another sender taken them over); which ones. The caller commits before sending."""
    return set(db.session.scalars(
        update(OutboxEmail).where(OutboxEmail.id.in_(email_ids), OutboxEmail.claimed_by == token,
                                  OutboxEmail.status == EmailStatus.PENDING)
        .values(send_started_at=now_utc()).returning(OutboxEmail.id)
        .execution_options(synchronize_session=False)))


@contextmanager
def _sent_book() -> Iterator[Callable[[int], None]]:
    """For a batch: the function that books an email the server accepted, committed at once, so that a sender
    that dies next sends it no second time.

    The outcomes go through a connection of their own, held for the batch in autocommit mode: one UPDATE, one round
    trip to the database per email, where a transaction of the session's took five (a connection from the pool,
    pinged; BEGIN; the UPDATE; COMMIT), as costly as the SMTP exchange itself. PostgreSQL need not wait for the
    disk (synchronous_commit off on this connection until the batch ends): the mark set before sending was, so if
    an outcome were lost in a crash the email would be sent again and counted as a possible duplicate.

    A session bound to a connection of its caller's (the tests' rolled-back transaction) has no engine to take a
    second connection from: there each outcome is committed in the session, with the same statement."""
    table = OutboxEmail.__table__
    statement = update(table).where(table.c.id == bindparam("email_id")).values(
        status=EmailStatus.SENT, sent_at=bindparam("sent_at"), attempts=table.c.attempts + 1, send_started_at=None)
    bind = db.session.get_bind(OutboxEmail)
    if not isinstance(bind, Engine):
        def book_in_session(email_id: int) -> None:
            connection = db.session.connection()
            if connection.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL synchronous_commit = off"))
            connection.execute(statement, {"email_id": email_id, "sent_at": now_utc()})
            db.session.commit()

        yield book_in_session
        return
    with bind.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")  # restored as the pool takes it back
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SET synchronous_commit = off"))
        try:
            yield lambda email_id: connection.execute(statement, {"email_id": email_id, "sent_at": now_utc()})
        except BaseException:
            connection.invalidate()  # it may be broken, and still has synchronous_commit off: never reused
            raise
        if postgres:
            connection.execute(text("RESET synchronous_commit"))


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
