"""One function per email: each returns the template context and queues the message in the outbox."""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

from . import outbox

if TYPE_CHECKING:
    from ..ledger.models import Donation


def receipt_context(donation: Donation) -> dict:
    return {
        "publication": current_app.config["PUBLICATION_NAME"],
        "name": donation.supporter.name,
        "amount": donation.money.format("en"),
        "covered_fee": donation.covered_fee,
        "frequency": donation.frequency,
        "date": donation.paid_at.strftime("%-d %B %Y") if donation.paid_at else "",
        "receipt_number": donation.receipt_number,
        "donation_id": donation.id,
        "public_url": current_app.config["PUBLIC_URL"],
    }


def queue_receipt(donation: Donation) -> None:
    """The receipt for a succeeded donation; its dedupe key makes a second one impossible."""
    outbox.queue("receipt", donation.supporter.email, receipt_context(donation), dedupe_key=f"receipt:{donation.id}")
