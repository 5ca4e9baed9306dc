"""Field checks shared by the donation form and the JSON API; each raises ValueError with a message for the reader."""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext

MAX_NAME = 200
MAX_URL = 2000


def _has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value)


def clean_email(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(gettext("Enter your email address."))
    if len(value) > 254 or _has_control_chars(value):
        raise ValueError(gettext("Enter a valid email address."))
    try:
        # ASCII addresses only: many mail servers cannot deliver to internationalised ones (SMTPUTF8).
        result = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise ValueError(gettext("Enter a valid email address, such as name@example.com.")) from None
    return result.normalized.lower()


def clean_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(gettext("Name must be text."))
    value = " ".join(value.split())
    if _has_control_chars(value):
        raise ValueError(gettext("Name contains characters that are not allowed."))
    if len(value) > MAX_NAME:
        raise ValueError(gettext("Name must be at most %(count)s characters.", count=MAX_NAME))
    return value or None


def clean_article_url(value: object) -> str | None:
    """The article a gift came from: an absolute http(s) URL, kept for attribution only, never redirected to."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL or _has_control_chars(value) or " " in value:
        raise ValueError(gettext("Article URL must be an http or https address."))
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:  # e.g. "https://[host/": urllib's own message means nothing to a reader
        raise ValueError(gettext("Article URL must be an http or https address.")) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise ValueError(gettext("Article URL must be an http or https address."))
    return value
