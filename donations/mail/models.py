"""The outbox: every email is a row first, written in the transaction that caused it."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..db import enum_column, now_utc
from ..extensions import db


class EmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxEmail(db.Model):
    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: One email per purpose, e.g. ``receipt:42``; a second insert with the same key is refused by the database.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    #: Files to attach, described (``[{"kind": "annual_statement", "statement_id": 7}]``) and rendered when
    #: the email is sent, through the renderers registered in donations.mail.attachments.
    #: JSONB on PostgreSQL, whose plain JSON has no equality, so its server default could not even be compared.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"),
                                                              default=list, server_default="[]")
    #: Stable across retries, so a receiving server can drop a duplicate.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[EmailStatus] = mapped_column(
        enum_column(EmailStatus, "email_status"), default=EmailStatus.PENDING, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=now_utc, index=True)
    #: The server's answer or the error of the last failed try (a 5xx reply is kept word for word).
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Set, and committed, just before the message is handed to the SMTP server; cleared once the outcome is
    #: written. Found still set by the next claim, it means a sender stopped mid-send: the server may have
    #: accepted the message, so sending it again may deliver it twice.
    send_started_at: Mapped[datetime | None]
    #: The sender that holds the email's claim (a random token per batch): a sender whose claim ran out
    #: and passed to another does not send the email.
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    #: How many times the email was sent again after such a stop: each is a possible duplicate delivery.
    possible_duplicates: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    sent_at: Mapped[datetime | None]
