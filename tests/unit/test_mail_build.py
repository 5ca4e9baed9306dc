"""build_message: the MIME message the sender hands to the SMTP server, read back as a mail client reads it."""
from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from io import BytesIO
from email.generator import BytesGenerator
from types import SimpleNamespace

import pytest

from donations.mail.sender import build_message, plain_text


def row(**changes) -> SimpleNamespace:
    values = dict(id=1, to_address="ada@example.com", subject="Thank you for your gift of €25.00",
                  message_id="<receipt.1.ab12@example.org>", created_at=datetime(2026, 11, 27, 7, tzinfo=timezone.utc),
                  body_text="Dear Ada,\nthank you: €25.00 — reçu 2026-000001.\n",
                  body_html="<p>Dear Ada, thank you: €25.00 — reçu 2026-000001.</p>\n", attachments=[])
    return SimpleNamespace(**{**values, **changes})


def read_back(message) -> email.message.EmailMessage:
    buffer = BytesIO()
    BytesGenerator(buffer).flatten(message, linesep="\r\n")  # as smtplib.send_message puts it on the wire
    return email.message_from_bytes(buffer.getvalue(), policy=email.policy.default)


def test_a_receipt_reads_back_with_its_headers_text_and_html_unchanged():
    message = read_back(build_message(row(), "Donations <donations@example.org>"))

    assert message["From"] == "Donations <donations@example.org>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Thank you for your gift of €25.00"  # encoded on the wire, decoded the same
    assert message["Message-ID"] == "<receipt.1.ab12@example.org>"
    assert message["Date"].datetime == datetime(2026, 11, 27, 7, tzinfo=timezone.utc)
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content() == "Dear Ada,\nthank you: €25.00 — reçu 2026-000001.\n"
    assert "reçu 2026-000001" in message.get_body(("html",)).get_content()
    assert list(message.iter_attachments()) == []


def test_the_log_transport_reads_the_plain_text_back():
    assert plain_text(build_message(row(), "donations@example.org")) == row().body_text


@pytest.mark.parametrize("field,value", [("to_address", "a@b.com\r\nBcc: x@y.z"),
                                         ("subject", "Thanks\nBcc: x@y.z"), ("message_id", "<a@b>\r\nX: 1")])
def test_a_line_break_in_a_header_refuses_the_message(field, value):
    with pytest.raises(ValueError, match="line break"):
        build_message(row(**{field: value}), "donations@example.org")


def test_an_address_that_is_not_ascii_is_built_for_smtputf8():
    message = build_message(row(to_address="jürgen@example.de"), "donations@example.org")

    assert isinstance(message, email.message.EmailMessage)  # smtplib sends it with SMTPUTF8
    assert message["To"] == "jürgen@example.de"
    assert message.get_body(("plain",)).get_content() == row().body_text


def flattened(message, policy=None) -> bytes:
    buffer = BytesIO()
    BytesGenerator(buffer, policy=policy).flatten(message, linesep="\r\n")
    return buffer.getvalue()


@pytest.mark.parametrize("changes", [
    {},
    {"subject": "Your annual statement for 2026, with every gift you gave us this year, one line each, in euros"},
    {"subject": "Plain  double  spaces\tand a tab", "to_address": "a.very.long.address.for.folding" * 3 + "@ex.org"},
    {"attachments": [{"kind": "test-pdf"}]},
])
def test_the_one_line_header_policy_puts_the_same_bytes_on_the_wire_as_compat32(changes, monkeypatch):
    from donations.mail import attachments

    monkeypatch.setitem(attachments._RENDERERS, "test-pdf", lambda: ("statement 2026.pdf", "application/pdf", b"%PDF"))
    message = build_message(row(**changes), "Donations <donations@example.org>")

    fast = flattened(message)  # the message's own policy, as smtplib.send_message flattens it
    assert fast == flattened(message, email.policy.compat32)  # the same multipart boundaries: set by the first
    assert b"Subject: " in fast and b"\r\n\r\n" in fast


@pytest.mark.parametrize("value", ["", "ada@example.com", "a  b", " leading", "trailing ", "tab\there", "x" * 71,
                                   "x" * 72, "x" * 200, "=?utf-8?q?caf=C3=A9?=", "café", "a; b=\"c\"", "ctl\x07"])
def test_the_one_line_header_policy_folds_each_header_as_compat32_does(value):
    from donations.mail.sender import _POLICY

    for name in ("Subject", "To", "Content-Type"):
        assert _POLICY.fold_binary(name, value) == email.policy.compat32.fold_binary(name, value)


@pytest.mark.parametrize("subject", ["Thank you for your gift of €25.00", "Merci pour votre don de 25,00 € — reçu "
                                     "2026-000001, avec toute notre gratitude pour votre soutien fidèle", "¥3,000"])
def test_a_subject_that_is_not_ascii_is_encoded_as_compat32_encodes_a_header_of_it(subject):
    from email.header import Header

    build_message(row(subject=subject), "donations@example.org")
    message = build_message(row(subject=subject), "donations@example.org")  # its encoding from the cache
    first = flattened(message)
    message.replace_header("Subject", Header(subject, "utf-8"))

    assert first == flattened(message)
    assert email.message_from_bytes(first, policy=email.policy.default)["Subject"] == subject
