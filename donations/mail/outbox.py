"""Writing emails into the outbox; they are sent only after the transaction commits."""
from __future__ import annotations

import secrets
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale

from ..db import insert_ignore
from ..extensions import db
from ..security.privacy import is_erased_address
from .models import OutboxEmail


def render(template: str, context: dict, locale: str = "en") -> tuple[str, str, str]:
    """Subject, text and HTML of an email, in ``locale`` (the scheduler has no request to choose one from)."""
    with force_locale(locale):
        subject = render_template(f"email/{template}/subject.txt", **context).strip().replace("\n", " ")
        text = render_template(f"email/{template}/body.txt", **context)
        html = render_template(f"email/{template}/body.html", **context)
    return subject, text, html


def queue(template: str, to_address: str, context: dict, *, dedupe_key: str,
          attachments: list[dict[str, Any]] | None = None, locale: str = "en") -> None:
    """Add one email to the outbox unless an email with ``dedupe_key`` is already there.

    ``attachments`` are descriptions (see donations.mail.attachments), rendered only when the email is sent.
    ``locale`` is the language of the email (a supporter's; staff emails are English).
    """
    for spec in attachments or ():
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            raise ValueError(f"an attachment is described by a dict with a 'kind', not {spec!r}")
    if is_erased_address(to_address):
        return  # an erased supporter (or any .invalid address): nothing is ever sent, nothing kept
    subject, text, html = render(template, context, locale)
    domain = current_app.config["MAIL_FROM"].rpartition("@")[2] or "localhost"
    insert_ignore(
        db.session,
        OutboxEmail,
        {
            "dedupe_key": dedupe_key,
            "template": template,
            "to_address": to_address,
            "subject": subject,
            "body_text": text,
            "body_html": html,
            "attachments": list(attachments or []),
            # Short enough not to be folded; random so that two installs never collide.
            "message_id": f"<{dedupe_key.replace(':', '.')}.{secrets.token_hex(8)}@{domain}>",
        },
        ["dedupe_key"],
    )
