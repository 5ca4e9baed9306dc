"""Redirect targets from user input: our own paths, or an exact allowlisted origin, nothing else.

Browsers are lenient in ways that turn innocent-looking strings into other sites: ``//evil`` and ``/\\evil``
are protocol-relative, ``https:evil`` is an absolute URL, tabs and newlines inside a URL are dropped, and a
target may be percent-encoded once more by whoever forwards it. So a target is judged both as given and
after percent-decoding, and anything unusual is refused rather than repaired.
"""
from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlsplit


def _is_local_path(value: str) -> bool:
    return value.startswith("/") and not value.startswith("//")


def _decoded_forms(target: str) -> list[str]:
    forms = [target]
    for _ in range(3):  # an encoded target decoded a few times over must still be plain
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL without user info; None otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.hostname}{f':{port}' if port is not None else ''}"


def safe_next(target: object, allowed_origins: Iterable[str] = (), *, path_prefix: str = "/") -> str | None:
    """``target`` when it is safe to redirect to, else None.

    Safe: a path of ours (one leading ``/``, starting with ``path_prefix``), or an absolute http(s) URL whose
    origin is exactly one of ``allowed_origins`` (no user info, no other host, no scheme tricks).
    """
    if not isinstance(target, str) or not target or len(target) > 2000:
        return None
    if any(c.isspace() for c in target):
        return None  # browsers drop tabs and newlines inside URLs ("/\t/evil" is "//evil"); we never make them
    forms = _decoded_forms(target)
    if any(not form.isprintable() or "\\" in form for form in forms):
        return None  # control characters (CR/LF for header injection) or backslashes, even encoded
    if all(_is_local_path(form) for form in forms):
        return target if target.startswith(path_prefix) else None
    allowed = {origin.rstrip("/").lower() for origin in allowed_origins if origin}
    if not allowed:
        return None
    # An absolute URL must be canonical as given (lower-case scheme, the origin spelled as allowed) and stay on
    # the same origin however often it is decoded.
    origins = {_origin(form) for form in forms}
    if len(origins) != 1:
        return None
    origin = origins.pop()
    if origin is None or origin.lower() not in allowed or not target.startswith(origin):
        return None
    rest = target[len(origin):]
    if rest and rest[0] not in "/?#":
        return None
    return target
