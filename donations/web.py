"""Request helpers shared by the views."""
from __future__ import annotations

from flask import request

#: Locales the ask and forms format amounts for; the reader's Accept-Language picks one.
SUPPORTED_LOCALES = ["en", "en_GB", "de", "fr", "nl", "es", "it", "da", "sv", "nb", "fi", "pl", "pt", "ja"]


def request_locale() -> str:
    """The locale Flask-Babel chose for this request (donations.i18n.select_locale): the words and the amounts
    and dates of a page follow the same one."""
    from .i18n import current_locale

    return current_locale()


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/stripe/", "/embed/v1/"))


def id_arg(value: str | None) -> int | None:
    """A row id from a query argument: ASCII digits that fit the id columns (a 32-bit integer), else None.

    str.isdigit() takes "²" and "٣", and an id of 30 digits overflows SQLite's and PostgreSQL's integers."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if number <= 2147483647 else None
    return None
