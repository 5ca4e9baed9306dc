"""Configuration from the environment: safe defaults for development, refusals for an incomplete production."""
from __future__ import annotations

import re

import pytest

from donations import create_app
from donations.config import DEFAULT_SECRET_KEY, SANDBOX_WEBHOOK_SECRET, Config, ConfigError

PRODUCTION = {
    "DONATIONS_ENV": "production",
    "SECRET_KEY": "k3y-" + "x" * 60,
    "STRIPE_SECRET_KEY": "sk_live_123",
    "STRIPE_WEBHOOK_SECRET": "whsec_live_123",
    "DATABASE_URL": "postgresql+psycopg://donations@db.internal/donations",
    "PUBLIC_URL": "https://donate.publisher.example",
    "SMTP_URL": "smtps://mailer:secret@smtp.publisher.example",
}


def config(environ: dict, tmp_path) -> Config:
    return Config(environ=environ, instance_path=str(tmp_path / "instance"))


def without(name: str) -> dict:
    return {k: v for k, v in PRODUCTION.items() if k != name}


# --- development defaults -----------------------------------------------------------------------


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path):
    assert config({}, tmp_path).SQLALCHEMY_DATABASE_URI == f"sqlite:///{tmp_path / 'instance' / 'donations.sqlite3'}"


def test_database_url_from_the_environment_is_used(tmp_path):
    assert config({"DATABASE_URL": "postgresql+psycopg://u@h/d"}, tmp_path).SQLALCHEMY_DATABASE_URI == (
        "postgresql+psycopg://u@h/d"
    )


def test_default_currencies_are_euro_dollar_and_pound(tmp_path):
    assert config({}, tmp_path).CURRENCIES == ["EUR", "USD", "GBP"]


def test_currencies_are_read_from_a_comma_separated_list(tmp_path):
    cfg = config({"CURRENCIES": "eur, jpy ,chf"}, tmp_path)
    cfg.validate()
    assert cfg.CURRENCIES == ["EUR", "JPY", "CHF"]


def test_without_a_stripe_key_payments_go_to_the_sandbox(tmp_path):
    cfg = config({}, tmp_path)
    cfg.validate()  # development without Stripe is fine
    assert cfg.PAYMENT_GATEWAY == "sandbox"
    assert cfg.STRIPE_WEBHOOK_SECRET == SANDBOX_WEBHOOK_SECRET  # sandbox events go through the real verification
    assert cfg.SECRET_KEY == DEFAULT_SECRET_KEY


def test_with_a_stripe_key_payments_go_to_stripe(tmp_path):
    cfg = config({"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_test_123"}, tmp_path)
    assert cfg.PAYMENT_GATEWAY == "stripe"
    assert cfg.STRIPE_WEBHOOK_SECRET == "whsec_test_123"


def test_per_currency_maximum_and_fixed_fee_are_parsed(tmp_path):
    cfg = config({"MAX_AMOUNTS": "eur:5000, JPY:1000000", "FEE_FIXED": "EUR:25"}, tmp_path)
    assert cfg.MAX_AMOUNTS == {"EUR": "5000", "JPY": "1000000"}
    assert cfg.FEE_FIXED == {"EUR": "25"}


def test_malformed_per_currency_setting_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected CODE:AMOUNT"):
        config({"MAX_AMOUNTS": "EUR5000"}, tmp_path)


# --- currencies ---------------------------------------------------------------------------------


def test_unknown_currency_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="CURRENCIES: Unknown currency ABC"):
        config({"CURRENCIES": "EUR,ABC"}, tmp_path).validate()


def test_currency_without_a_known_stripe_minimum_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="minimum charge for XXX is not known"):
        config({"CURRENCIES": "EUR,XXX"}, tmp_path).validate()


def test_empty_currency_list_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="CURRENCIES"):
        config({"CURRENCIES": " , "}, tmp_path).validate()


# --- production ---------------------------------------------------------------------------------


def test_complete_production_config_is_accepted(tmp_path):
    cfg = config(PRODUCTION, tmp_path)
    cfg.validate()
    assert cfg.PAYMENT_GATEWAY == "stripe"
    assert cfg.SESSION_COOKIE_SECURE is True


def test_production_without_stripe_secret_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="production needs STRIPE_SECRET_KEY"):
        config(without("STRIPE_SECRET_KEY"), tmp_path).validate()


def test_production_with_an_empty_stripe_secret_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="production needs STRIPE_SECRET_KEY"):
        config({**PRODUCTION, "STRIPE_SECRET_KEY": ""}, tmp_path).validate()


def test_production_without_stripe_webhook_secret_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="production needs STRIPE_WEBHOOK_SECRET"):
        config(without("STRIPE_WEBHOOK_SECRET"), tmp_path).validate()


def test_production_with_neither_stripe_setting_is_refused_rather_than_using_the_sandbox(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if not k.startswith("STRIPE_")}
    with pytest.raises(ConfigError, match="sandbox is refused in production"):
        config(env, tmp_path).validate()


def test_production_with_the_sandbox_webhook_secret_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="real STRIPE_WEBHOOK_SECRET"):
        config({**PRODUCTION, "STRIPE_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET}, tmp_path).validate()


@pytest.mark.parametrize("secret_key", [None, DEFAULT_SECRET_KEY, "too-short-secret"])
def test_production_with_the_default_or_a_weak_secret_key_is_refused(tmp_path, secret_key):
    env = without("SECRET_KEY") if secret_key is None else {**PRODUCTION, "SECRET_KEY": secret_key}
    with pytest.raises(ConfigError, match="SECRET_KEY of at least 32"):
        config(env, tmp_path).validate()


@pytest.mark.parametrize("env_name", ["Production", "prod"])
def test_unrecognised_environment_name_is_refused(tmp_path, env_name):
    env = {"DONATIONS_ENV": env_name}  # no Stripe keys, default secret: must not start as if in development
    with pytest.raises(ConfigError):  # refused as unknown, or read as production and refused as incomplete
        config(env, tmp_path).validate()


def test_app_refuses_to_start_with_an_incomplete_production_config(tmp_path):
    with pytest.raises(ConfigError, match="production needs STRIPE_SECRET_KEY"):
        create_app(config({"DONATIONS_ENV": "production"}, tmp_path))


def test_production_without_smtp_is_refused(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "SMTP_URL"}
    with pytest.raises(ConfigError, match="SMTP_URL"):
        config(env, tmp_path).validate()


@pytest.mark.parametrize("env,message", [
    ({"FEE_FIXED": "EUR:0.25"}, "FEE_FIXED"),
    ({"FEE_PERCENT": "100"}, "FEE_PERCENT"),
    ({"FEE_PERCENT": "lots"}, "FEE_PERCENT"),
    ({"MAX_AMOUNTS": "EUR:ten"}, "MAX_AMOUNTS"),
    ({"MAX_AMOUNT_DEFAULT": "1e9"}, "MAX_AMOUNTS"),
])
def test_unreadable_fee_or_maximum_settings_are_refused_at_start(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        config(env, tmp_path).validate()


@pytest.mark.parametrize(("environ", "message"), [
    ({"BOOKS_CURRENCY": "XYZ"}, "BOOKS_CURRENCY: Unknown currency XYZ."),
    ({"XERO_TAX_RATE": "  "}, "XERO_TAX_RATE: name a tax rate"),
    ({"LEDGER_ACCOUNTS": "bank=1201 Bank;till=1000 Cash"}, "LEDGER_ACCOUNTS: unknown role 'till'"),
    ({"LEDGER_ACCOUNTS": "bank"}, "LEDGER_ACCOUNTS: expected role=account name"),
    ({"LEDGER_ACCOUNTS": "bank= "}, "LEDGER_ACCOUNTS: every role needs an account name"),
])
def test_books_settings_are_checked_at_start(environ, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(environ=environ).validate()


def test_books_currency_defaults_to_the_first_accepted_currency():
    assert Config(environ={"CURRENCIES": "GBP,EUR"}).BOOKS_CURRENCY == "GBP"
