"""Languages: which locale a request is in, and the catalogues the reader's pages, the embed and the emails use.

The text follows Flask-Babel's catalogues (donations/translations/: en is the source, de and fr translated) and
the amounts and dates are formatted for the same locale (request_locale() is the locale Flask-Babel chose), so a
German reader reads "25,00 €" beside German words. Staff pages stay in English."""
from __future__ import annotations

import os
from pathlib import Path

from flask import has_request_context, request
from flask_babel import force_locale, get_locale, gettext, refresh

#: Languages with a catalogue of their own; other locales read English words (amounts still in their format).
LANGUAGES = ["en", "de", "fr"]
#: The names the language select shows, each in its own language.
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français"}
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
#: Where a view notes the locale of the page's subject (a supporter's saved language, an attempt's locale): in the
#: request's own environ, which a request made in the middle of it (the sandbox's webhook deliveries) cannot touch.
PAGE_LOCALE = "donations.page_locale"


def _supported(value: object) -> str | None:
    """A locale of SUPPORTED_LOCALES named by ``value`` (``de-DE`` -> ``de``), else None."""
    from .web import SUPPORTED_LOCALES

    if not isinstance(value, str) or not value:
        return None
    wanted = value.replace("-", "_")
    for candidate in (wanted, wanted.split("_")[0]):
        if candidate in SUPPORTED_LOCALES:
            return candidate
    return None


def N_(message: str) -> str:
    """Marks ``message`` for the catalogues without translating it here: it is stored or passed on in English
    and translated (gettext) where a reader sees it."""
    return message


def select_locale() -> str:
    """The request's locale, in this order: the page's ``locale`` argument (the embed and the forms pass it),
    the supporter's saved language on pages reached through their manage link (or the attempt's locale on the
    sandbox checkout), the browser's Accept-Language, English. Staff pages are English."""
    if not has_request_context():
        return "en"
    if request.blueprint == "staff":
        return "en"
    explicit = _supported(request.args.get("locale"))
    if explicit:
        return explicit
    saved = _supported(request.environ.get(PAGE_LOCALE))
    if saved:
        return saved
    from .web import SUPPORTED_LOCALES

    best = request.accept_languages.best_match([loc.replace("_", "-") for loc in SUPPORTED_LOCALES])
    return best.replace("-", "_") if best else "en"


def use_locale(locale: str | None) -> None:
    """Let this request's page follow ``locale`` (a supporter's saved language, an attempt's locale), unless the
    page names one itself."""
    request.environ[PAGE_LOCALE] = locale
    refresh()


def current_locale() -> str:
    """The chosen locale as a Babel identifier (``de``, ``en_GB``); ``en`` outside a request or a forced one."""
    locale = get_locale()
    return str(locale) if locale is not None else "en"


def current_language() -> str:
    """The language the page's words are in, for ``<html lang>``: the chosen locale's if it has a catalogue,
    else English (a Dutch reader's page formats amounts the Dutch way, but its words are English)."""
    language = current_locale().split("_")[0]
    return language if language in LANGUAGES else "en"


def format_day(moment, locale: str | None = None) -> str:
    """A day as readers of ``locale`` (default: the page's or email's) write it: 26 November 2026,
    26. November 2026, 26 novembre 2026. English keeps the day first, as the publication writes it."""
    from babel.dates import format_date

    if not moment:
        return ""
    locale = locale or current_locale()
    if locale.split("_")[0] not in LANGUAGES:
        locale = "en"  # the month's name would be the only word of that language in an English sentence
    if locale.split("_")[0] == "en":
        return format_date(moment, "d MMMM y", locale=locale)
    return format_date(moment, "long", locale=locale)


def status_label(status) -> str:
    """A donation's status as the supporter's pages show it (``partially refunded``), in the page's language."""
    value = getattr(status, "value", status)
    labels = {"pending": gettext("pending"), "succeeded": gettext("succeeded"), "failed": gettext("failed"),
              "refunded": gettext("refunded"), "partially_refunded": gettext("partially refunded"),
              "disputed": gettext("disputed")}
    return labels.get(value, str(value).replace("_", " "))


def init_app(app) -> None:
    """The catalogues, built if stale; template helpers: the chosen locale and language, and the translated
    status of a donation."""
    try:
        compile_catalogues(TRANSLATIONS)
    except OSError as exc:  # a read-only install: `make translations` (pybabel compile) belongs to the deploy
        app.logger.error("the translations could not be built (%s): readers would read English", exc)
    missing = [language for language in LANGUAGES[1:]
               if not (TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo").exists()]
    if missing:
        app.logger.error("no compiled catalogue for %s: run `make translations`", ", ".join(missing))
    app.jinja_env.globals.update(current_locale=current_locale, current_language=current_language)
    app.add_template_filter(status_label, "status_label")

    # Each request chooses afresh, and leaves no choice behind. Flask-Babel keeps its choice in ``g``, which
    # requests share when they run inside one application context: a CLI command, a test, or the sandbox
    # delivering its webhook events to the app in the middle of a reader's request.
    app.before_request(refresh)
    app.teardown_request(lambda exc: refresh())


def email_locale(*candidates: str | None) -> str:
    """The first of ``candidates`` (the supporter's saved language, then the attempt's locale) that is a locale
    we format for; English otherwise."""
    for candidate in candidates:
        found = _supported(candidate)
        if found:
            return found
    return "en"


def compile_catalogues(directory: Path = TRANSLATIONS) -> list[Path]:
    """Build each language's messages.mo from its messages.po where the .mo is missing or older (what
    ``make translations`` does with pybabel), for a bare ``pytest`` on a fresh checkout. Returns the files built."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    built = []
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parent.parent.name)
        partial = mo.with_suffix(f".mo.{os.getpid()}")
        with partial.open("wb") as target:
            write_mo(target, catalog)
        partial.replace(mo)  # atomic: a test run reading the catalogue never sees half a file
        built.append(mo)
    return built


__all__ = ["LANGUAGES", "compile_catalogues", "LANGUAGE_NAMES", "TRANSLATIONS", "current_language", "current_locale", "email_locale",
           "N_", "force_locale", "select_locale", "use_locale"]
