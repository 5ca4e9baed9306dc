"""A recurring gift's history as the staff read it: each stored change (donations.ledger.operations._note keeps
the raw values: amounts in minor units, ``True``/``False``, status and frequency codes) as words and money.

Staff pages are English only, so nothing here is translated."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ..ledger.models import Frequency, RecurringChange, RecurringDonation
from ..money import Money, MoneyError

#: A recurring gift's status as the staff pages name it (the gift's line and its history alike).
STATUS_LABELS = {"incomplete": "incomplete", "active": "active", "past_due": "past due", "paused": "paused",
                 "canceled": "cancelled"}

#: What changed, as the history names it.
WHAT_LABELS = {"started": "Started", "status": "Status", "amount": "Amount", "currency": "Currency",
               "frequency": "Frequency", "cancel_at_period_end": "Cancellation", "paused_until": "Pause"}

#: The "started" note: ``str(Money)`` and the frequency's code, e.g. ``10.41 EUR monthly``.
_STARTED = re.compile(r"(?P<amount>-?[0-9]+(?:\.[0-9]+)?) (?P<currency>[A-Z]{3}) (?P<frequency>[a-z_]+)")


@dataclass(frozen=True)
class ChangeLine:
    """One line of the history: ``at`` (Stripe's time), ``what`` (a label), ``old`` (None for a first value)
    and ``new``, both as text to show."""

    at: datetime
    what: str
    old: str | None
    new: str


def status_label(value: str | None) -> str:
    return STATUS_LABELS.get(value or "", (value or "").replace("_", " "))


def _frequency(value: str | None) -> str | None:
    try:
        return Frequency(value).every
    except ValueError:
        return value


def _amount(value: str | None, currency: str) -> str | None:
    if value is None:
        return None
    try:
        return Money(int(value), currency).format()
    except (ValueError, ArithmeticError, MoneyError):  # not a number, or too large for Babel to format
        return value


def _started(value: str | None) -> str | None:
    match = _STARTED.fullmatch(value or "")
    if match is None:
        return value
    try:
        money = Money.from_major(match["amount"], match["currency"]).format()
    except MoneyError:
        return value
    return f"{money} {_frequency(match['frequency'])}"


def _cancellation(value: str | None) -> str | None:
    return {"True": "will end at period end", "False": "continues"}.get(value or "", value)


def _pause(value: str | None) -> str:
    return f"paused until {value}" if value else "not paused"


def describe(recurring: RecurringDonation, changes: list[RecurringChange]) -> list[ChangeLine]:
    """The gift's changes, oldest first, as lines to show. An amount is shown in the currency it was in:
    the gift's currency before the change for the old amount, after it for the new (Stripe changes both at
    once when a price in another currency replaces the old one)."""
    currency_changes = [c for c in changes if c.what == "currency" and c.old]
    currency = currency_changes[0].old if currency_changes else recurring.currency
    lines = []
    for change in changes:
        old, new = change.old, change.new
        if change.what == "started":
            new = _started(new)
        elif change.what == "status":
            old, new = (status_label(old) if old is not None else None), status_label(new)
        elif change.what == "amount":
            after = next((c.new for c in changes if c.what == "currency" and c.at == change.at and c.new), currency)
            old, new = _amount(old, currency), _amount(new, after)
        elif change.what == "currency":
            currency = new or currency
        elif change.what == "frequency":
            old, new = _frequency(old), _frequency(new)
        elif change.what == "cancel_at_period_end":
            old, new = _cancellation(old), _cancellation(new)
        elif change.what == "paused_until":
            old, new = _pause(old), _pause(new)
        lines.append(ChangeLine(at=change.at, what=WHAT_LABELS.get(change.what, change.what.replace("_", " ")),
                                old=old, new=new if new is not None else "—"))
    return lines
