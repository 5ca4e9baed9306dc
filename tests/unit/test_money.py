"""Money: parsing what readers type, display, Stripe's limits and the fee a supporter may cover."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donations.money import Money, MoneyError, UnknownCurrency, check_amount, fee_to_cover

CONFIG = {
    "CURRENCIES": ["EUR", "USD", "GBP", "JPY"],
    "MAX_AMOUNTS": {"EUR": "5000"},
    "MAX_AMOUNT_DEFAULT": "10000",
    "FEE_PERCENT": "1.5",
    "FEE_FIXED": {"EUR": "25", "USD": "30", "GBP": "20"},
}

#: No .hypothesis/ directory in the work tree; the same examples on every run (a CI run passes or fails as the
#: last one did), and no deadline (a loaded machine's slow example is not a failure).
property_settings = settings(database=None, max_examples=300, derandomize=True, deadline=None)


# --- parsing what the reader typed -------------------------------------------------------------

@pytest.mark.parametrize(("text", "minor"), [
    ("25", 2500),
    ("25.5", 2550),
    ("25.50", 2550),
    ("25,50", 2550),  # a decimal comma, as typed in much of Europe
    (" 25 ", 2500),
    ("0.5", 50),
])
def test_euro_amounts_are_read_in_major_units(text, minor):
    assert Money.from_major(text, "EUR") == Money(minor, "EUR")


def test_jpy_amounts_are_whole_yen():
    assert Money.from_major("2500", "JPY") == Money(2500, "JPY")


def test_jpy_amounts_have_no_decimals():
    with pytest.raises(MoneyError, match="JPY amounts have no decimals"):
        Money.from_major("25.5", "JPY")


def test_more_decimals_than_the_currency_has_are_refused_not_rounded():
    with pytest.raises(MoneyError, match="EUR amounts have at most 2 decimals"):
        Money.from_major("25.001", "EUR")


@pytest.mark.parametrize("text", ["abc", "", "   ", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "1,000.50", "25 EUR"])
def test_text_that_is_not_an_amount_is_refused_with_an_example(text):
    with pytest.raises(MoneyError, match="Enter an amount such as 25 or 25.50"):
        Money.from_major(text, "EUR")


@pytest.mark.parametrize("text", ["12345678901234567890", "10000000000000.01"])
def test_absurdly_large_amounts_are_refused(text):
    with pytest.raises(MoneyError, match="too large"):
        Money.from_major(text, "EUR")


@pytest.mark.parametrize("text", ["1e30", "1e999999999", "9E+999999", "2_5", "١٠", "1 000", "+5", "0x10"])
def test_only_plain_digits_are_an_amount(text):
    with pytest.raises(MoneyError, match="Enter an amount such as 25"):
        Money.from_major(text, "EUR")


@pytest.mark.parametrize("text,currency", [("10,000", "EUR"), ("1.000", "EUR"), ("10,000", "JPY"), ("25.00", "JPY")])
def test_more_decimals_than_the_currency_has_are_refused_not_read_as_a_smaller_amount(text, currency):
    with pytest.raises(MoneyError, match=f"{currency} amounts have"):
        Money.from_major(text, currency)


def test_negative_amount_is_refused_as_below_the_minimum_gift():
    # Parsing keeps the sign; the gift check is what refuses it, with a message naming the minimum.
    gift = Money.from_major("-5", "EUR")
    with pytest.raises(MoneyError, match="smallest gift is €0.50"):
        check_amount(gift, CONFIG)


@pytest.mark.parametrize("value", [2500.0, True, None, b"25", Decimal("25")])
def test_only_text_or_whole_numbers_are_parsed(value):
    with pytest.raises(MoneyError):
        Money.from_major(value, "EUR")


def test_amounts_are_whole_minor_units_never_floats():
    with pytest.raises(MoneyError):
        Money(25.5, "EUR")


# --- currencies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["ABC", "EURO", "", "€", None])
def test_unknown_currency_is_refused(code):
    with pytest.raises(UnknownCurrency):
        Money(2500, code)
    with pytest.raises(UnknownCurrency):
        Money.from_major("25", code)


def test_currency_code_is_normalised_to_upper_case():
    assert Money(2500, " eur ").currency == "EUR"


def test_adding_amounts_in_one_currency_sums_them():
    assert Money(2500, "EUR") + Money(64, "EUR") == Money(2564, "EUR")


def test_adding_amounts_in_different_currencies_is_refused():
    with pytest.raises(MoneyError, match="different currencies"):
        Money(2500, "EUR") + Money(2500, "USD")


# --- display ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("money", "text"), [
    (Money(2500, "EUR"), "25.00"),
    (Money(5, "EUR"), "0.05"),
    (Money(2500, "JPY"), "2500"),
    (Money(25500, "BHD"), "25.500"),  # three decimals
])
def test_major_str_uses_the_currency_decimals(money, text):
    assert money.major_str() == text


@pytest.mark.parametrize(("locale", "text"), [
    ("en", "€25.00"),
    ("de", "25,00\xa0€"),
    ("de-DE", "25,00\xa0€"),
    ("xx", "€25.00"),  # an unknown locale falls back to English rather than failing
])
def test_amounts_are_shown_in_the_readers_locale(locale, text):
    assert Money(2500, "EUR").format(locale) == text


def test_jpy_is_shown_without_decimals():
    assert Money(2500, "JPY").format("en") == "¥2,500"


# --- Stripe's minimum and our maximum -----------------------------------------------------------

@pytest.mark.parametrize(("currency", "minimum", "shown"), [
    ("EUR", 50, "€0.50"),
    ("GBP", 30, "£0.30"),
    ("JPY", 50, "¥50"),
])
def test_gifts_below_stripes_minimum_are_refused(currency, minimum, shown):
    check_amount(Money(minimum, currency), CONFIG)
    with pytest.raises(MoneyError, match=f"smallest gift is {shown}"):
        check_amount(Money(minimum - 1, currency), CONFIG)


def test_maximum_per_currency_comes_from_max_amounts():
    check_amount(Money(500000, "EUR"), CONFIG)
    with pytest.raises(MoneyError, match="largest gift online is €5,000.00"):
        check_amount(Money(500001, "EUR"), CONFIG)


def test_currencies_without_their_own_maximum_use_the_default():
    check_amount(Money(1000000, "USD"), CONFIG)
    with pytest.raises(MoneyError, match=r"largest gift online is \$10,000.00"):
        check_amount(Money(1000001, "USD"), CONFIG)
    with pytest.raises(MoneyError, match="largest gift online is ¥10,000"):
        check_amount(Money(10001, "JPY"), CONFIG)


def test_currencies_not_configured_here_are_refused():
    with pytest.raises(UnknownCurrency, match="We accept EUR, USD, GBP, JPY"):
        check_amount(Money(2500, "CHF"), CONFIG)


# --- covering the processing fee ----------------------------------------------------------------

def test_covered_fee_for_a_typical_euro_gift():
    # (2500 + 25) / (1 - 0.015) = 2563.45..., rounded up to 2564.
    assert fee_to_cover(Money(2500, "EUR"), CONFIG) == Money(64, "EUR")


def test_covered_fee_without_a_fixed_part_for_the_currency():
    # 2500 / 0.985 = 2538.07..., rounded up to 2539.
    assert fee_to_cover(Money(2500, "JPY"), CONFIG) == Money(39, "JPY")


def test_no_fee_configured_means_nothing_to_cover():
    assert fee_to_cover(Money(2500, "EUR"), {"FEE_PERCENT": "0", "FEE_FIXED": {}}) == Money(0, "EUR")


@property_settings
@given(
    amount=st.integers(min_value=50, max_value=10**12),
    currency=st.sampled_from(["EUR", "USD", "GBP", "JPY"]),
    percent=st.sampled_from(["0", "1.4", "1.5", "2.5", "2.9", "3.25", "10"]),
    fixed=st.integers(min_value=0, max_value=500),
)
def test_with_the_fee_covered_the_whole_gift_arrives(amount, currency, percent, fixed):
    config = {"FEE_PERCENT": percent, "FEE_FIXED": {currency: str(fixed)}}
    gift = Money(amount, currency)

    fee = fee_to_cover(gift, config)

    total = gift + fee
    rate = Decimal(percent) / 100
    arrives = total.amount - total.amount * rate - fixed
    assert fee.amount >= 0
    assert arrives >= gift.amount  # after Stripe's percentage and fixed fee, the gift is whole
    # Rounded up, not more: one minor unit less would not be enough.
    assert (total.amount - 1) - (total.amount - 1) * rate - fixed < gift.amount
    # Also when Stripe rounds its percentage fee to the nearest minor unit.
    charged = (total.amount * rate).to_integral_value(rounding=ROUND_HALF_UP) + fixed
    assert total.amount - charged >= gift.amount


@property_settings
@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["EUR", "USD", "GBP", "JPY", "BHD", "CHF"]),
)
def test_major_str_reads_back_as_the_same_amount(amount, currency):
    money = Money(amount, currency)
    assert Money.from_major(money.major_str(), currency) == money


@property_settings
@given(amount=st.integers(min_value=-10**15, max_value=10**15),
       currency=st.sampled_from(["EUR", "JPY", "BHD", "USD", "CLF"]))
def test_major_str_is_the_exact_decimal_of_the_minor_units(amount, currency):
    money = Money(amount, currency)
    assert Decimal(money.major_str()) == Decimal(amount).scaleb(-money.exponent)
    assert money.major_str() == f"{money.as_decimal():.{money.exponent}f}"
