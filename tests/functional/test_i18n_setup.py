"""The catalogues are there wherever the app starts, and the words and the `lang` they are marked with agree:
a locale without a catalogue (nl, ja) reads English words, dated in English, amounts still in its own format."""
from __future__ import annotations

import logging
import shutil
from datetime import date

from flask import Flask

from donations import i18n
from donations.i18n import format_day


def copy_of_sources(tmp_path):
    """donations/translations/ as a fresh checkout has it: the .po files, no compiled .mo."""
    target = tmp_path / "translations"
    shutil.copytree(i18n.TRANSLATIONS, target, ignore=shutil.ignore_patterns("*.mo", "*.mo.*"))
    return target


def test_an_app_starting_on_a_fresh_checkout_builds_the_catalogues(tmp_path, monkeypatch):
    translations = copy_of_sources(tmp_path)
    monkeypatch.setattr(i18n, "TRANSLATIONS", translations)
    assert not list(translations.glob("*/LC_MESSAGES/messages.mo"))

    i18n.init_app(Flask(__name__))

    assert sorted(p.parent.parent.name for p in translations.glob("*/LC_MESSAGES/messages.mo")) == ["de", "fr"]


def test_an_app_that_cannot_build_them_says_which_languages_readers_would_read_in_english(tmp_path, monkeypatch,
                                                                                          caplog):
    monkeypatch.setattr(i18n, "TRANSLATIONS", copy_of_sources(tmp_path))

    def read_only(directory):
        raise PermissionError(13, "Permission denied", str(directory))

    monkeypatch.setattr(i18n, "compile_catalogues", read_only)
    with caplog.at_level(logging.ERROR):
        i18n.init_app(Flask(__name__))

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("could not be built" in message and "Permission denied" in message for message in errors)
    assert any("no compiled catalogue for de, fr" in message for message in errors)


def test_pages_say_the_language_their_words_are_in(client):
    assert '<html lang="de">' in client.get("/donate?locale=de").get_data(as_text=True)
    assert '<html lang="fr">' in client.get("/donate", headers={"Accept-Language": "fr-FR"}).get_data(as_text=True)
    # Dutch amounts, English words: the page is English.
    dutch = client.get("/donate?locale=nl").get_data(as_text=True)
    assert '<html lang="en">' in dutch and "<title>Donate · " in dutch
    assert '<html lang="en">' in client.get("/embed/cta/default?locale=ja").get_data(as_text=True)


def test_days_are_written_in_the_language_of_the_words_around_them():
    day = date(2026, 11, 27)
    assert format_day(day, "de") == "27. November 2026"
    assert format_day(day, "fr") == "27 novembre 2026"
    assert format_day(day, "en_GB") == "27 November 2026"
    assert format_day(day, "pl") == "27 November 2026"  # not "27 listopada 2026" in an English sentence
    assert format_day(day, "ja") == "27 November 2026"


def test_the_html_ask_varies_with_the_readers_language(client):
    for path in ("/embed/cta/default", "/embed/cta/default.html"):
        german = client.get(path, headers={"Accept-Language": "de"})
        assert german.status_code == 200
        assert "Accept-Language" in german.headers.get("Vary", "")
        assert "Betrag wählen" in german.get_data(as_text=True)
