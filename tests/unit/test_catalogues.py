"""The translation catalogues (donations/translations/): complete, never fuzzy, with the same placeholders as the
English, and the template (messages.pot) up to date with the marked messages in the code and templates."""
from __future__ import annotations

import re
from configparser import ConfigParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from donations.i18n import LANGUAGES, TRANSLATIONS

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [language for language in LANGUAGES if language != "en"]
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def catalogue(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


def template():
    with (TRANSLATIONS / "messages.pot").open("rb") as pot:
        return read_po(pot)


def ids(cat) -> set:
    return {message.id if isinstance(message.id, str) else tuple(message.id) for message in cat if message.id}


def extracted() -> set:
    """What `make translations-extract` would put into messages.pot today (babel.cfg, keywords _l and N_)."""
    config = ConfigParser()
    config.read(ROOT / "babel.cfg")
    method_map = [(section.split(":", 1)[1].strip(), section.split(":", 1)[0].strip())
                  for section in config.sections()]
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "N_": None}
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, keywords=keywords, options_map={}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_the_template_holds_every_marked_message_and_no_other():
    current, stored = extracted(), ids(template())

    assert not current - stored, f"run `make translations-extract` and translate: {sorted(current - stored)}"
    assert not stored - current, f"no longer in the code: {sorted(stored - current)}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language):
    cat = catalogue(language)

    assert ids(cat) == ids(template()), "run `make translations-extract`"
    untranslated = [m.id for m in cat if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])]
    fuzzy = [m.id for m in cat if m.id and m.fuzzy]
    assert not untranslated, untranslated
    assert not fuzzy, fuzzy
    assert not cat.fuzzy, "the catalogue's header is marked fuzzy"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_of_the_english(language):
    for message in catalogue(language):
        if not message.id:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        for text in (message.string if isinstance(message.string, tuple) else (message.string,)):
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(english)), (english, text)
            assert text.count("<") == english.count("<"), (english, text)  # the same markup


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_are_not_left_in_english(language):
    # Words the same in both languages are allowed (Status, Date, Pause); a sentence never is.
    same = [m.id for m in catalogue(language)
            if m.id and isinstance(m.id, str) and m.string == m.id and len(m.id.split()) > 2]
    assert not same, same


def test_compiled_catalogues_are_built_from_the_po_files(app):
    """The .mo files are not in git: make and tests/conftest.py build them; the app reads what they hold."""
    from flask_babel import force_locale, gettext

    with app.app_context():
        for language, expected in (("de", "Ihre Spenden"), ("fr", "Vos dons"), ("en", "Your donations")):
            with force_locale(language):
                assert gettext("Your donations") == expected
