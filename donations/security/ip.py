"""Client IP addresses, only ever stored as a keyed hash.

The address itself comes from ``request.remote_addr``: Werkzeug's ``ProxyFix`` (configured with
TRUSTED_PROXIES in create_app) sets it from ``X-Forwarded-For`` only as far as our own proxies go, so a
client cannot choose it by sending the header.
"""
from __future__ import annotations

import hashlib
import hmac

from flask import current_app, has_request_context, request


def _salt() -> bytes:
    config = current_app.config
    if config.get("IP_HASH_SALT"):
        return config["IP_HASH_SALT"].encode()
    # Derived, not SECRET_KEY itself: a hash must never help anyone guess the key that signs sessions.
    return hmac.new(config["SECRET_KEY"].encode(), b"donations ip hash salt", hashlib.sha256).digest()


def hash_ip(ip: str | None) -> str | None:
    """HMAC-SHA256 of an address under the secret salt, as 64 hex characters; None for None or ""."""
    if not ip:
        return None
    return hmac.new(_salt(), ip.encode(), hashlib.sha256).hexdigest()


def client_ip() -> str | None:
    """The client's address as ProxyFix leaves it (never a raw X-Forwarded-For); None outside a request."""
    return request.remote_addr if has_request_context() else None


def client_ip_hash() -> str | None:
    """What may be stored of the client's address."""
    return hash_ip(client_ip())
