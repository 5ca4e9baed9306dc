"""A real SMTP server on loopback (aiosmtpd), for the tests that send mail."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


class KeepEverything:
    """Accepts every message and keeps its envelope."""

    def __init__(self, messages: list):
        self.messages = messages

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@contextmanager
def smtp_on_loopback(handler=None) -> Iterator[tuple[int, list]]:
    """Serves ``handler`` (by default one that keeps every message) on a free port of 127.0.0.1;
    yields (port, the messages the default handler kept)."""
    from aiosmtpd.controller import Controller

    messages: list = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler or KeepEverything(messages), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()
