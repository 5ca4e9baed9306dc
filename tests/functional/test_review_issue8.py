"""Review of issue 8's defences and privacy features: defects a reader, an attacker or the publisher would hit."""
from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from donations.security import antifraud
from tests.functional.antifraud_helpers import filled_form, form_page, hidden


@pytest.fixture(autouse=True)
def fresh_attack_mode(app):
    with app.app_context():
        antifraud.forget_attack_mode()
    yield
    with app.app_context():
        antifraud.forget_attack_mode()


def _stamp(app, seconds_ago: float) -> str:
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="donations.donate-form.started").dumps(
        {"t": time.time() - seconds_ago})


def test_a_reader_who_fixes_a_typo_quickly_after_a_slow_first_fill_is_not_taken_for_a_bot(app, client, monkeypatch):
    """The form re-shown after a validation error must keep the reader's clock: they filled the form in at
    human speed, and correcting one field and pressing Donate again takes a second, not FORM_MIN_SECONDS."""
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    html = form_page(client)
    # The reader took a minute over the form, and mistyped the email.
    first = client.post("/donate", data=filled_form(html, started=_stamp(app, 60), email="reader@example"))
    assert first.status_code == 400
    page = first.get_data(as_text=True)
    assert "quicker than a person" not in page

    # Fixing the address and pressing Donate again at once goes through.
    again = client.post("/donate", data=filled_form(page, email="reader@example.com"))
    assert again.status_code == 303, again.get_data(as_text=True)[:2000]


def test_a_fresh_form_sent_back_at_once_is_still_refused(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    html = form_page(client)
    fast = client.post("/donate", data=filled_form(html, email="reader@example"))
    assert fast.status_code == 400 and "quicker than a person" in fast.get_data(as_text=True)
    # The stamp the refusal shows again is a fresh one: sending it straight back is refused too.
    again = client.post("/donate", data=filled_form(fast.get_data(as_text=True), email="reader@example.com"))
    assert again.status_code == 400 and "quicker than a person" in again.get_data(as_text=True)
