"""Attachments described on an outbox row and rendered when the email is sent.

A row stores only a small description (``{"kind": "annual_statement", "statement_id": 7}``), so the
outbox stays light and a file is built from the ledger as it stands when the email leaves. Domain
packages register a renderer for each kind at app start; the mail package never imports them.
"""
from __future__ import annotations

from typing import Any, Callable

#: ``fn(**args) -> (filename, mimetype, bytes)``
Renderer = Callable[..., tuple[str, str, bytes]]

_RENDERERS: dict[str, Renderer] = {}


class AttachmentError(RuntimeError):
    """An attachment could not be rendered; the email waits and is tried again, like an SMTP failure."""


def register(kind: str, fn: Renderer) -> None:
    """Make ``kind`` renderable by ``fn``; registering the same kind again replaces it (app factories run twice in tests)."""
    _RENDERERS[kind] = fn


def describe(kind: str, **args: Any) -> dict[str, Any]:
    """The JSON description of one attachment, as stored on the outbox row."""
    return {"kind": kind, **args}


def render(spec: dict[str, Any]) -> tuple[str, str, bytes]:
    """Build the file that ``spec`` describes; any failure becomes an AttachmentError naming the kind."""
    kind = spec.get("kind") if isinstance(spec, dict) else None
    fn = _RENDERERS.get(kind) if isinstance(kind, str) else None
    if fn is None:
        raise AttachmentError(f"no renderer registered for attachment kind {kind!r}")
    args = {key: value for key, value in spec.items() if key != "kind"}
    try:
        filename, mimetype, data = fn(**args)
    except Exception as exc:  # whatever the renderer's reason, the email must wait, not crash the sender
        raise AttachmentError(f"attachment {kind}: {type(exc).__name__}: {exc}") from exc
    if "/" not in mimetype or not isinstance(data, bytes):
        raise AttachmentError(f"attachment {kind}: renderer returned {mimetype!r} and {type(data).__name__}")
    return filename, mimetype, data
