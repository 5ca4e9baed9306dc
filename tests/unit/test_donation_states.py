"""The donation state machine: money only moves along the allowed paths, and never backwards."""
from __future__ import annotations

from itertools import product

import pytest

import donations.models  # noqa: F401  (every mapped class, so Donation can be built in memory)
from donations.ledger.models import DONATION_TRANSITIONS, Donation, DonationStatus, IllegalTransition

S = DonationStatus

#: The allowed moves, written out by hand as the specification the table must match.
ALLOWED = {
    (S.PENDING, S.SUCCEEDED),  # paid (also asynchronously, e.g. SEPA)
    (S.PENDING, S.FAILED),  # async payment failed
    (S.SUCCEEDED, S.PARTIALLY_REFUNDED),
    (S.SUCCEEDED, S.REFUNDED),
    (S.SUCCEEDED, S.DISPUTED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),  # a second partial refund
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.DISPUTED),
    (S.DISPUTED, S.SUCCEEDED),  # dispute won
    (S.DISPUTED, S.PARTIALLY_REFUNDED),  # dispute won on a gift that was partly refunded before
    (S.DISPUTED, S.REFUNDED),  # dispute lost
}
ILLEGAL = sorted(
    (old, new) for old, new in product(S, S) if (old, new) not in ALLOWED and old != new
)


def donation(status: DonationStatus) -> Donation:
    return Donation(status=status, amount=2500, currency="EUR")


def test_transition_table_matches_the_allowed_moves():
    table = {(old, new) for old, targets in DONATION_TRANSITIONS.items() for new in targets}
    assert table == ALLOWED
    assert set(DONATION_TRANSITIONS) == set(S)  # every status has an entry, even the final ones


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED), ids=lambda s: s.value)
def test_allowed_move_changes_the_status(old, new):
    d = donation(old)
    assert d.transition(new) is True
    assert d.status is new


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=lambda s: s.value)
def test_illegal_move_is_refused_and_leaves_the_status_unchanged(old, new):
    d = donation(old)
    with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
        d.transition(new)
    assert d.status is old


@pytest.mark.parametrize("status", [s for s in S if s is not S.PARTIALLY_REFUNDED], ids=lambda s: s.value)
def test_moving_to_the_current_status_is_a_no_op(status):
    d = donation(status)
    assert d.transition(status) is False
    assert d.status is status


def test_failure_after_success_is_refused():
    # A late async_payment_failed must never un-book money that arrived.
    d = donation(S.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        d.transition(S.FAILED)
    assert d.status is S.SUCCEEDED


@pytest.mark.parametrize("final", [S.FAILED, S.REFUNDED], ids=lambda s: s.value)
def test_failed_and_refunded_are_final(final):
    for new in S:
        if new is final:
            continue
        with pytest.raises(IllegalTransition):
            donation(final).transition(new)


@pytest.mark.parametrize("status", [s for s in S if s is not S.PENDING], ids=lambda s: s.value)
def test_no_donation_goes_back_to_pending(status):
    with pytest.raises(IllegalTransition):
        donation(status).transition(S.PENDING)


def test_refused_move_names_the_donation():
    d = donation(S.REFUNDED)
    d.id = 42
    with pytest.raises(IllegalTransition, match="donation 42: refunded -> succeeded"):
        d.transition(S.SUCCEEDED)
