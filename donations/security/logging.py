"""Structured, scrubbed logs: JSON lines in production, text in development; no secrets, no forged lines.

One handler on the root logger (so the app's, Werkzeug's and the libraries' records all pass through it):
- ``ScrubFilter`` works out each record's safe text once: Stripe keys and webhook secrets, passwords, manage
  tokens in URLs, Authorization and Cookie headers and the app's own secrets are replaced, email addresses
  become a pseudonym (``e:`` + 12 hex of an HMAC, the same address always the same pseudonym), and control
  characters (CR, LF, ANSI escapes…) are escaped so user input cannot start a line of its own;
- ``JsonFormatter`` writes one object per line (time, level, logger, message, request_id, path, method);
  ``TextFormatter`` a line as before, with the same scrubbed message.
The record itself is left as it is (other handlers, such as pytest's, see what the code logged); only what
this handler writes is scrubbed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
import uuid
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request

EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
PATTERNS: list[tuple[re.Pattern, str]] = [
    # Stripe secret and restricted keys, webhook signing secrets.
    (re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]+"), r"\1_\2_[secret]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_]+"), "whsec_[secret]"),
    # Headers and fields that carry credentials, in any of the shapes a log line may quote them.
    (re.compile(r"(?i)\b(authorization|proxy-authorization)(['\"]?\s*[:=]\s*['\"]?)[^'\",;\r\n]+"), r"\1\2[secret]"),
    (re.compile(r"(?i)\b(cookie|set-cookie)(['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n]+"), r"\1\2[secret]"),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|api_key|apikey|token|csrf_token)(['\"]?\s*[:=]\s*['\"]?)"
                r"[^\s'\",;&]+"), r"\1\2[secret]"),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [secret]"),
    # A manage link's token is the supporter's key to their gifts.
    (re.compile(r"/account/(?!request\b)[A-Za-z0-9._~-]{16,}"), "/account/[token]"),
    # Passwords in URLs (SMTP_URL, DATABASE_URL).
    (re.compile(r"(://[^:/@\s]*):[^@/\s]+@"), r"\1:[secret]@"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_control(text: str) -> str:
    """CR, LF, tabs, ESC and the like as visible escapes, so that a message stays on its own line."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(),
                                                                               f"\\x{ord(m.group()):02x}"), text)


class Scrubber:
    """Replaces secrets and email addresses in text; keyed by the app's secrets."""

    def __init__(self, key: bytes = b"", secrets: tuple[str, ...] = ()):
        self.key = key
        # Longest first, so that a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def pseudonym(self, email: str) -> str:
        return "e:" + hmac.new(self.key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:12]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
        return EMAIL.sub(lambda m: self.pseudonym(m.group()), text)


class ScrubFilter(logging.Filter):
    """Adds ``safe_message`` and ``safe_exc`` (scrubbed, control characters escaped) to each record."""

    def __init__(self, scrubber: Scrubber):
        super().__init__()
        self.scrubber = scrubber
        self._exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a bad format string still leaves a line)
            message = f"{record.msg!r} {record.args!r}"
        record.safe_message = _escape_control(self.scrubber(message))
        exc = ""
        if record.exc_info:
            exc = self._exc_formatter.formatException(record.exc_info)
        elif record.exc_text:
            exc = record.exc_text
        if record.stack_info:
            exc = f"{exc}\n{record.stack_info}".strip()
        record.safe_exc = self.scrubber(exc) if exc else ""
        record.safe_context = _request_context(self.scrubber)
        return True


def _request_context(scrubber: Scrubber) -> dict[str, str]:
    if not has_request_context():
        return {}
    return {"request_id": request_id(), "path": _escape_control(scrubber(request.path)), "method": request.method}


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id() -> str:
    """This request's id: the proxy's X-Request-ID when it looks like one, else a new one."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    return g.request_id


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _time(record), "level": record.levelname, "logger": record.name,
                 "message": getattr(record, "safe_message", "")}
        entry.update(getattr(record, "safe_context", {}))
        if getattr(record, "safe_exc", ""):
            entry["exception"] = record.safe_exc
        # json.dumps escapes every control character: one object per line, whatever the input.
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "safe_context", {})
        where = f" [{context['request_id'][:12]} {context['method']} {context['path']}]" if context else ""
        line = f"{_time(record)} {record.levelname} {record.name}{where}: {getattr(record, 'safe_message', '')}"
        exc = getattr(record, "safe_exc", "")
        if exc:
            # A traceback keeps its lines, each indented and escaped: no line of it can pass for a record.
            line += "".join(f"\n    | {_escape_control(part)}" for part in exc.splitlines())
        return line


class AppLogHandler(logging.StreamHandler):
    """The app's handler on the root logger (to stderr, as basicConfig's was); one at a time."""


def scrubber_for(config) -> Scrubber:
    secret_key = str(config.get("SECRET_KEY") or "")
    key = hmac.new(secret_key.encode(), b"donations log pseudonyms", hashlib.sha256).digest()
    secrets = tuple(str(config.get(name) or "") for name in (
        "SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "CAPTCHA_SECRET_KEY", "IP_HASH_SALT"))
    return Scrubber(key, secrets)


def configure_logging(app: Flask, stream=None) -> logging.Handler:
    """One scrubbing handler on the root logger, in LOG_FORMAT; set up again (not added twice) per app."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, AppLogHandler)]:
        root.removeHandler(old)
    handler = AppLogHandler(stream or sys.stderr)
    handler.addFilter(ScrubFilter(scrubber_for(app.config)))
    handler.setFormatter(JsonFormatter() if app.config.get("LOG_FORMAT") == "json" else TextFormatter())
    root.addHandler(handler)
    if root.level == logging.WARNING or root.level == logging.NOTSET:  # Python's default: raise it to INFO
        root.setLevel(logging.INFO)
    # Flask's own logger would add a handler of its own when none is configured for it; ours is on the root.
    app.logger.handlers.clear()
    return handler
