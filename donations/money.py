"""Money: integer minor units plus an ISO 4217 code. Exponents and display come from Babel."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from decimal import ROUND_CEILING, Decimal

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision, list_currencies
from flask_babel import gettext

#: Stripe's minimum charge per currency, in minor units
#: (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_CHARGE: dict[str, int] = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50,
    "CZK": 1500, "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500,
    "INR": 50, "JPY": 50, "MXN": 1000, "MYR": 200, "NOK": 300, "NZD": 50,
    "PLN": 200, "RON": 200, "SEK": 300, "SGD": 50, "THB": 1000,
}

_KNOWN = frozenset(list_currencies())
#: An amount in major units as readers type it: digits, and a point or comma before the decimals.
_AMOUNT = re.compile(r"-?[0-9]{1,30}(?:[.,](?P<decimals>[0-9]+))?")


class MoneyError(ValueError):
    """An amount or currency that cannot be money here; the message is fit for a form."""


class UnknownCurrency(MoneyError):
    pass


def normalise_currency(code: object) -> str:
    if type(code) is str and code in _KNOWN:  # already a code as stored (the exports build a million of these)
        return code  # type: ignore[return-value]
    if not isinstance(code, str) or not code.isascii() or len(code.strip()) != 3:
        raise UnknownCurrency(gettext("Unknown currency."))
    upper = code.strip().upper()
    if upper not in _KNOWN:
        raise UnknownCurrency(gettext("Unknown currency %(code)s.", code=upper))
    return upper


@lru_cache(maxsize=None)
def currency_exponent(code: str) -> int:
    """Digits after the decimal point for ``code`` (EUR 2, JPY 0), from Babel's CLDR data (which does not
    change while the app runs, hence the cache)."""
    return get_currency_precision(normalise_currency(code))


@dataclass(frozen=True, order=False)
class Money:
    amount: int  #: minor units (cents), never a float
    currency: str  #: ISO 4217, upper case

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise MoneyError("Amount must be a whole number of minor units.")
        object.__setattr__(self, "currency", normalise_currency(self.currency))

    @classmethod
    def from_major(cls, text: object, currency: str) -> Money:
        """Parse ``"25"``, ``"25.5"`` or ``"25.50"`` in major units; more decimals than the currency has is an error."""
        currency = normalise_currency(currency)
        if not isinstance(text, (str, int)) or isinstance(text, bool):
            raise MoneyError(gettext("Enter an amount such as 25 or 25.50."))
        match = _AMOUNT.fullmatch(text.strip() if isinstance(text, str) else str(text))
        if match is None:  # no exponents, separators, spaces or non-ASCII digits: only what a reader types
            raise MoneyError(gettext("Enter an amount such as 25 or 25.50."))
        exponent = currency_exponent(currency)
        if len(match.group("decimals") or "") > exponent:
            # Also "10,000" in EUR: read as ten with three decimals, it would charge a thousandth of what was meant.
            if exponent == 0:
                raise MoneyError(gettext("%(currency)s amounts have no decimals.", currency=currency))
            raise MoneyError(gettext("%(currency)s amounts have at most %(count)s decimals.", currency=currency,
                                     count=exponent))
        minor = int(Decimal(match.group(0).replace(",", ".")).scaleb(exponent))
        if abs(minor) > 10**15:
            raise MoneyError(gettext("That amount is too large."))
        return cls(minor, currency)

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    def as_decimal(self) -> Decimal:
        return Decimal(self.amount).scaleb(-self.exponent)

    def major_str(self) -> str:
        """Plain decimal string in major units (``25.00``, JPY ``2500``), for exports and forms."""
        exponent = self.exponent
        if not exponent:
            return str(self.amount)
        whole, minor = divmod(abs(self.amount), 10**exponent)  # integers only: exact, and fast for exports
        return f"{'-' if self.amount < 0 else ''}{whole}.{minor:0{exponent}d}"

    def format(self, locale: str = "en") -> str:
        """Display with the reader's locale: ``€25.00`` in en, ``25,00 €`` in de."""
        return format_currency(self.as_decimal(), self.currency, locale=_locale(locale))

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise MoneyError("Cannot add amounts in different currencies.")
        return Money(self.amount + other.amount, self.currency)

    def __str__(self) -> str:
        return f"{self.major_str()} {self.currency}"


def _locale(name: str) -> Locale:
    try:
        return Locale.parse(name.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")


def _reader_locale() -> str:
    """The locale of the page or email being made (amounts in messages agree with their words); else en."""
    from flask_babel import get_locale

    locale = get_locale()
    return str(locale) if locale is not None else "en"


def minimum_charge(currency: str) -> Money:
    return Money(MINIMUM_CHARGE[normalise_currency(currency)], currency)


def maximum_charge(currency: str, config: dict) -> Money:
    """The configured ceiling for one gift (MAX_AMOUNTS, else MAX_AMOUNT_DEFAULT), in major units."""
    currency = normalise_currency(currency)
    major = config["MAX_AMOUNTS"].get(currency, config["MAX_AMOUNT_DEFAULT"])
    return Money.from_major(major, currency)


def check_amount(money: Money, config: dict) -> None:
    """Raise MoneyError unless the currency is accepted here and the amount within Stripe's minimum and our maximum."""
    if money.currency not in config["CURRENCIES"]:
        raise UnknownCurrency(gettext("We accept %(currencies)s.", currencies=", ".join(config["CURRENCIES"])))
    low, high = minimum_charge(money.currency), maximum_charge(money.currency, config)
    if money.amount < low.amount:
        raise MoneyError(gettext("The smallest gift is %(amount)s.", amount=low.format(_reader_locale())))
    if money.amount > high.amount:
        raise MoneyError(gettext("The largest gift online is %(amount)s.", amount=high.format(_reader_locale())))


def fee_to_cover(gift: Money, config: dict) -> Money:
    """The processing fee a supporter adds so that ``gift`` arrives in full.

    Solves total = gift + fixed + percent * total, rounding up to the next minor unit.
    """
    percent = Decimal(config["FEE_PERCENT"]) / 100
    fixed = int(config["FEE_FIXED"].get(gift.currency, "0"))
    total = ((Decimal(gift.amount) + fixed) / (1 - percent)).to_integral_value(rounding=ROUND_CEILING)
    return Money(int(total) - gift.amount, gift.currency)
