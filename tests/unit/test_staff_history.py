"""The staff's recurring-gift history reads any stored change without failing: odd, unknown or oversized values
are shown as stored rather than taking the supporter's page down."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace as Change

import pytest

from donations.staff.history import describe

AT = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("what,old,new", [
    ("amount", "12.5", ""), ("amount", "9" * 64, "-5"), ("currency", "eur", "ZZZ"),
    ("started", None, "99999999999999999999999999999999 EUR monthly"), ("started", None, "1 ZZZ weekly"),
    ("status", None, None), ("frequency", None, "weekly"), ("cancel_at_period_end", "x", None),
    ("paused_until", "", "2026"), ("weird_key", "<b>", "<script>"),
])
def test_odd_stored_changes_are_shown_not_raised(app, what, old, new):
    with app.test_request_context():
        lines = describe(Change(currency="EUR"), [Change(at=AT, what=what, old=old, new=new)])

    assert len(lines) == 1


def test_an_amount_too_large_to_format_is_shown_as_stored(app):
    with app.test_request_context():
        [line] = describe(Change(currency="EUR"), [Change(at=AT, what="amount", old="1000", new="9" * 64)])

    assert "€10.00" in str(line) and "9" * 64 in str(line)
