"""Request helpers shared by the views."""
from __future__ import annotations

from flask import request

#: Locales the ask and forms format amounts for; the reader's Accept-Language picks one.
SUPPORTED_LOCALES = ["en", "en_GB", "de", "fr", "nl", "es", "it", "da", "sv", "nb", "fi", "pl", "pt", "ja"]


def request_locale() -> str:
    wanted = request.args.get("locale")
    if isinstance(wanted, str):
        wanted = wanted.replace("-", "_")
        for candidate in (wanted, wanted.split("_")[0]):
            if candidate in SUPPORTED_LOCALES:
                return candidate
    best = request.accept_languages.best_match([loc.replace("_", "-") for loc in SUPPORTED_LOCALES])
    return best.replace("-", "_") if best else "en"


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/stripe/", "/embed/v1/"))


def id_arg(value: str | None) -> int | None:
    """A row id from a query argument: ASCII digits that fit the id columns (a 32-bit integer), else None.

    str.isdigit() takes "²" and "٣", and an id of 30 digits overflows SQLite's and PostgreSQL's integers."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if number <= 2147483647 else None
    return None
