"""Defences on starting a checkout: rate limits, honeypot, fill time, minimum amounts, client addresses."""
from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from donations.checkout.models import AttemptStatus, CheckoutAttempt
from donations.config import Config, ConfigError
from donations.extensions import db
from donations.security import antifraud
from donations.security.ip import hash_ip
from tests.functional.antifraud_helpers import (  # noqa: F401 (fixtures)
    API,
    CountingGateway,
    api_body,
    app_with,
    filled_form,
    form_clock,
    form_page,
    fresh_attack_mode,
    gateway,
)






def limits(monkeypatch, app, ip="1000 per minute", email="1000 per minute", global_="1000 per minute"):
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_PER_IP", ip)
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_PER_EMAIL", email)
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_GLOBAL", global_)


def attempts_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(CheckoutAttempt))


# -- rate limits -----------------------------------------------------------------------------------


def test_the_per_address_limit_answers_429_with_retry_after_and_reshows_the_form(app, client, gateway, monkeypatch):
    limits(monkeypatch, app, ip="3 per minute")
    html = form_page(client)
    answers = [client.post("/donate", data=filled_form(html, email=f"r{n}@example.com")) for n in range(5)]

    assert [r.status_code for r in answers] == [303, 303, 303, 429, 429]
    limited = answers[-1]
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    page = limited.get_data(as_text=True)
    assert "Too many donation attempts in a short time. Nothing was charged" in page
    assert '<form class="donate"' in page and 'value="r4@example.com"' in page  # the form, as filled in
    assert gateway.calls == 3 and attempts_count(app) == 3


def test_the_per_address_limit_keys_on_the_address_so_another_reader_still_gives(app, client, gateway, monkeypatch):
    limits(monkeypatch, app, ip="2 per minute")
    html = form_page(client)
    for n in range(3):
        client.post("/donate", data=filled_form(html, email=f"r{n}@example.com"), environ_base={"REMOTE_ADDR": "192.0.2.1"})

    other = client.post("/donate", data=filled_form(html, email="x@example.com"), environ_base={"REMOTE_ADDR": "192.0.2.2"})

    assert other.status_code == 303 and gateway.calls == 3


def test_the_per_email_limit_counts_the_address_whatever_its_case(app, client, gateway, monkeypatch):
    limits(monkeypatch, app, email="2 per minute")
    statuses = [client.post(API, json=api_body(email=email), environ_base={"REMOTE_ADDR": f"192.0.2.{n}"}).status_code
                for n, email in enumerate(["a@example.com", "A@Example.com", " a@example.COM ", "b@example.com"])]

    assert statuses == [201, 201, 429, 201]
    assert gateway.calls == 3


def test_the_global_limit_stops_many_addresses_and_emails(app, client, gateway, monkeypatch):
    limits(monkeypatch, app, global_="4 per minute")
    answers = [client.post(API, json=api_body(email=f"r{n}@example.com"), environ_base={"REMOTE_ADDR": f"192.0.2.{n}"})
               for n in range(6)]

    assert [r.status_code for r in answers] == [201, 201, 201, 201, 429, 429]
    body = answers[-1].get_json()
    assert body["retry_after"] == int(answers[-1].headers["Retry-After"]) > 0
    assert "Nothing was charged" in body["error"]
    assert gateway.calls == 4


def test_an_address_over_its_own_limit_does_not_use_up_the_global_one(app, client, gateway, monkeypatch):
    limits(monkeypatch, app, ip="2 per minute", global_="3 per minute")
    for n in range(20):  # one noisy address: only its first 2 count towards everyone's 3
        client.post(API, json=api_body(email=f"bot{n}@example.com"), environ_base={"REMOTE_ADDR": "192.0.2.66"})

    reader = client.post(API, json=api_body(email="reader@example.org"), environ_base={"REMOTE_ADDR": "192.0.2.7"})

    assert reader.status_code == 201 and gateway.calls == 3


def test_a_limited_api_request_creates_nothing_even_when_the_body_is_valid(app, client, gateway, monkeypatch):
    limits(monkeypatch, app, ip="1 per minute")
    assert client.post(API, json=api_body()).status_code == 201
    limited = client.post(API, json=api_body(email="other@example.com"))

    assert limited.status_code == 429 and limited.headers["Retry-After"].isdigit()
    assert gateway.calls == 1 and attempts_count(app) == 1


@pytest.mark.parametrize("trusted", ["0", "1"])
def test_rotating_x_forwarded_for_does_not_escape_the_per_address_limit(app, connection, tmp_path, trusted):
    with app_with(app, connection, str(tmp_path), TRUSTED_PROXIES=trusted, CHECKOUT_LIMIT_PER_IP="3 per minute") as other:
        counting = CountingGateway(other.extensions["payment_gateway"])
        other.extensions["payment_gateway"] = counting
        client = other.test_client()
        statuses = []
        for n in range(8):
            # Behind one trusted proxy the attacker's fakes come first, and the proxy appends the real address.
            forwarded = f"198.51.100.{n}" if trusted == "0" else f"198.51.100.{n}, 203.0.113.5"
            statuses.append(client.post(API, json=api_body(email=f"r{n}@example.com"),
                                        headers={"X-Forwarded-For": forwarded},
                                        environ_base={"REMOTE_ADDR": "203.0.113.5" if trusted == "0" else "10.0.0.1"})
                            .status_code)
        with other.app_context():
            hashes = set(db.session.scalars(select(CheckoutAttempt.ip_hash)))
            expected = hash_ip("203.0.113.5")
    assert statuses == [201] * 3 + [429] * 5
    assert counting.calls == 3
    assert hashes == {expected}  # and each attempt keeps the real address, hashed


def test_each_attempt_stores_the_keyed_hash_of_the_client_address_never_the_address(app, client, gateway):
    assert client.post(API, json=api_body(), environ_base={"REMOTE_ADDR": "192.0.2.44"}).status_code == 201
    with app.app_context():
        stored = db.session.scalars(select(CheckoutAttempt.ip_hash)).one()
        assert stored == hash_ip("192.0.2.44") and len(stored) == 64 and "192.0.2.44" not in stored


# -- honeypot and fill time ---------------------------------------------------------------------------


def test_a_filled_honeypot_is_refused_quietly_with_nothing_written_and_no_gateway_call(app, client, gateway):
    html = form_page(client)
    assert 'class="hp-field" aria-hidden="true"' in html
    assert 'name="homepage"' in html and 'tabindex="-1"' in html and 'autocomplete="off"' in html

    response = client.post("/donate", data=filled_form(html, homepage="https://spam.example"))

    assert response.status_code == 400
    assert "could not be started" in response.get_data(as_text=True)
    assert "homepage" not in response.get_data(as_text=True)  # nothing tells the bot which field gave it away
    assert gateway.calls == 0 and attempts_count(app) == 0


def test_the_honeypot_is_hidden_by_the_stylesheet(client):
    response = client.get("/static/site.css")
    css = response.get_data(as_text=True)
    response.close()
    assert ".hp-field {" in css and "left: -10000px" in css


def test_a_form_sent_back_faster_than_a_person_fills_it_in_is_refused_and_shown_again(app, client, gateway,
                                                                                      monkeypatch, form_clock):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 2)
    html = form_page(client)

    fast = client.post("/donate", data=filled_form(html, email="quick@example.com"))

    assert fast.status_code == 400 and gateway.calls == 0
    page = fast.get_data(as_text=True)
    assert "quicker than a person can fill in the form" in page and 'value="quick@example.com"' in page
    form_clock.advance(2.1)
    # The page shown again starts its own clock; after a human pause the gift goes through.
    assert client.post("/donate", data=filled_form(page, email="quick@example.com")).status_code == 303
    assert gateway.calls == 1


def test_the_form_filled_in_again_after_a_cancelled_checkout_can_be_sent_at_once(app, client, gateway, monkeypatch,
                                                                                 form_clock):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    html = form_page(client)
    form_clock.advance(3.1)
    assert client.post("/donate", data=filled_form(html)).status_code == 303
    with app.app_context():
        attempt_id = db.session.scalars(select(CheckoutAttempt.id)).one()

    # "Cancel and go back": the form comes back filled in; the reader presses Donate again straight away.
    again = client.get(f"/donate?attempt={attempt_id}").get_data(as_text=True)
    response = client.post("/donate", data=filled_form(again))

    assert response.status_code == 303 and gateway.calls == 2


@pytest.mark.parametrize("whose", ["another browser's", "finished", "a day old"])
def test_only_this_browsers_open_recent_attempt_skips_the_clock(app, client, gateway, monkeypatch, form_clock, whose):
    """An attempt id is no pass: a bot could name anyone's (or an API attempt's, whose id can be computed from its
    key) to get a form it may send at once. Only a checkout this browser opened, still open, within the day."""
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    opener = app.test_client() if whose == "another browser's" else client
    html = form_page(opener)
    form_clock.advance(3.1)
    assert opener.post("/donate", data=filled_form(html)).status_code == 303
    with app.app_context():
        attempt = db.session.scalars(select(CheckoutAttempt)).one()
        if whose == "finished":
            attempt.status = AttemptStatus.COMPLETED
        if whose == "a day old":
            attempt.created_at -= timedelta(days=1, seconds=1)
        db.session.commit()
        attempt_id = attempt.id

    again = client.get(f"/donate?attempt={attempt_id}").get_data(as_text=True)
    response = client.post("/donate", data=filled_form(again, email="someone.new@example.com"))

    assert response.status_code == 400 and gateway.calls == 1
    assert "quicker than a person can fill in the form" in response.get_data(as_text=True)


def test_an_attempt_id_that_names_no_attempt_gets_a_fresh_clock(app, client, gateway, monkeypatch, form_clock):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 3)
    html = client.get("/donate?attempt=00000000-0000-4000-8000-000000000000").get_data(as_text=True)

    response = client.post("/donate", data=filled_form(html))

    assert response.status_code == 400 and gateway.calls == 0
    assert "quicker than a person can fill in the form" in response.get_data(as_text=True)


@pytest.mark.parametrize("stamp", ["", "garbage", "eyJ0IjoxfQ.forged.signature"])
def test_a_missing_or_forged_stamp_is_refused(app, client, gateway, monkeypatch, stamp):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 1)
    html = form_page(client)
    response = client.post("/donate", data=filled_form(html, started=stamp))

    assert response.status_code == 400 and gateway.calls == 0
    assert "could not be checked" in response.get_data(as_text=True)


def test_a_stamp_signed_with_another_key_or_too_old_is_refused(app, client, gateway, monkeypatch):
    monkeypatch.setitem(app.config, "FORM_MIN_SECONDS", 1)
    html = form_page(client)
    foreign = URLSafeTimedSerializer("another-secret", salt="donations.donate-form.started").dumps({"t": 1})
    assert client.post("/donate", data=filled_form(html, started=foreign)).status_code == 400

    with app.test_request_context():
        old = antifraud.form_stamp()
    monkeypatch.setattr(antifraud, "FORM_MAX_AGE_SECONDS", -1)
    expired = client.post("/donate", data=filled_form(html, started=old))

    assert expired.status_code == 400 and "has expired" in expired.get_data(as_text=True)
    assert gateway.calls == 0


# -- minimum amounts ---------------------------------------------------------------------------------


def test_the_configured_minimum_applies_to_the_form_with_the_amount_formatted(app, client, gateway, monkeypatch):
    monkeypatch.setitem(app.config, "MIN_AMOUNTS", {"EUR": "5", "USD": "1"})
    html = form_page(client)

    low = client.post("/donate", data=filled_form(html, amount="other", custom_amount="4.99"))

    assert low.status_code == 400 and "The smallest gift is €5.00." in low.get_data(as_text=True)
    assert client.post("/donate", data=filled_form(html, amount="other", custom_amount="5")).status_code == 303
    assert gateway.calls == 1


def test_the_configured_minimum_applies_to_the_api_in_the_readers_locale(app, client, gateway, monkeypatch):
    monkeypatch.setitem(app.config, "MIN_AMOUNTS", {"EUR": "3"})
    response = client.post(API, json=api_body(amount=299), headers={"Accept-Language": "de"})

    assert response.status_code == 400
    # Words and amount in the reader's language alike (the catalogues, issue 10).
    assert response.get_json()["errors"]["amount"] == "Die kleinste Spende beträgt 3,00\xa0€."
    assert client.post(API, json=api_body(amount=300)).status_code == 201
    assert gateway.calls == 1


def test_a_minimum_below_stripes_is_raised_to_stripes(app, client, gateway, monkeypatch):
    monkeypatch.setitem(app.config, "MIN_AMOUNTS", {"EUR": "0.10"})
    response = client.post(API, json=api_body(amount=49))
    assert response.status_code == 400 and response.get_json()["errors"]["amount"] == "The smallest gift is €0.50."


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("environ, message", [
    ({"CHECKOUT_LIMIT_PER_IP": "lots"}, "CHECKOUT_LIMIT_PER_IP"),
    ({"CHECKOUT_LIMIT_GLOBAL": ""}, "CHECKOUT_LIMIT_GLOBAL"),
    ({"MIN_AMOUNTS": "EUR:abc"}, "MIN_AMOUNTS for EUR"),
    ({"MIN_AMOUNTS": "EUR:0"}, "MIN_AMOUNTS for EUR"),
    ({"FORM_MIN_SECONDS": "-1"}, "FORM_MIN_SECONDS"),
    ({"CAPTCHA_PROVIDER": "recaptcha"}, "CAPTCHA_PROVIDER must be"),
    ({"CAPTCHA_PROVIDER": "turnstile"}, "needs CAPTCHA_SITE_KEY and CAPTCHA_SECRET_KEY"),
    ({"CAPTCHA_PROVIDER": "hcaptcha", "CAPTCHA_SITE_KEY": "site"}, "needs CAPTCHA_SITE_KEY and CAPTCHA_SECRET_KEY"),
    ({"CAPTCHA_MODE": "always"}, "CAPTCHA_MODE=always needs CAPTCHA_PROVIDER"),
    ({"CAPTCHA_MODE": "sometimes"}, "CAPTCHA_MODE must be"),
    ({"ATTACK_FAILURE_SHARE": "1.5"}, "ATTACK_FAILURE_SHARE"),
    ({"ATTACK_MIN_ATTEMPTS": "0"}, "ATTACK_MIN_ATTEMPTS"),
    ({"ATTACK_BASELINE_DAYS": "-1"}, "ATTACK_BASELINE_DAYS"),
    ({"ATTACK_BASELINE_MARGIN": "1"}, "ATTACK_BASELINE_MARGIN"),
])
def test_unusable_defence_settings_stop_the_start(environ, message):
    with pytest.raises(ConfigError, match=message):
        Config(environ=environ).validate()


def test_the_defaults_and_a_complete_captcha_setting_start():
    Config(environ={}).validate()
    Config(environ={"CAPTCHA_PROVIDER": "turnstile", "CAPTCHA_SITE_KEY": "1x00000000000000000000AA",
                    "CAPTCHA_SECRET_KEY": "1x0000000000000000000000000000000AA", "CAPTCHA_MODE": "always"}).validate()


def test_with_the_shared_store_away_the_limits_still_hold_in_memory(app, client, gateway, monkeypatch):
    class Unreachable:
        def hit(self, *args, **kwargs):
            raise ConnectionError("redis://limits.internal:6379 refused the connection")

    limits(monkeypatch, app, ip="2 per minute")
    monkeypatch.setattr(antifraud, "_strategy", lambda: Unreachable())
    monkeypatch.delitem(app.extensions, "checkout_rate_limiter_fallback", raising=False)

    statuses = [client.post(API, json=api_body(email=f"r{n}@example.com")).status_code for n in range(4)]

    assert statuses == [201, 201, 429, 429] and gateway.calls == 2
    app.extensions.pop("checkout_rate_limiter_fallback", None)
