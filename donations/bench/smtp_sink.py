"""An SMTP server on loopback that accepts every message and counts it: `python -m donations.bench.smtp_sink`.

The outbox benchmark runs it in a process of its own, so that the server never shares a GIL with the sender it
measures. It prints ``READY <port>`` once it listens; when its standard input closes it stops and prints one JSON
line: the messages it accepted, how many distinct Message-IDs they carried, and their bytes.
"""
from __future__ import annotations

import json
import re
import sys

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class CountingHandler:
    """Accepts every message (250) and remembers only what the benchmark checks."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.message_ids: set[bytes] = set()

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or b""
        self.messages += 1
        self.bytes += len(content)
        header = content.split(b"\r\n\r\n", 1)[0]
        match = _MESSAGE_ID.search(header)
        if match:
            self.message_ids.add(match.group(1))
        return "250 OK"

    def summary(self) -> dict:
        return {"messages": self.messages, "distinct_message_ids": len(self.message_ids), "bytes": self.bytes}


def main() -> None:
    from aiosmtpd.controller import Controller

    from .load import free_port

    handler = CountingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        print(f"READY {port}", flush=True)
        sys.stdin.read()  # the benchmark closes our standard input when its run is over
    finally:
        controller.stop()
    print(json.dumps(handler.summary()), flush=True)


if __name__ == "__main__":
    main()
