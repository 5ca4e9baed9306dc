"""Security headers on every response: Content-Security-Policy, HSTS, nosniff, Referrer-Policy, framing.

One place builds them, for Flask's responses (an after_request hook, which also runs for error pages) and for
the WSGI middleware answering the embed's beacons before Flask (``static_headers``).
"""
from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, g, request

from .captcha import PROVIDERS

HSTS = "max-age=31536000; includeSubDomains"


def content_security_policy(config: Mapping, frame_ancestors: str = "'none'") -> str:
    """The policy of every page: our own scripts only (no inline ones), no plugins, no <base> tricks."""
    provider = config.get("CAPTCHA_PROVIDER") or ""
    # The configured widget's script, frame and verification calls (security/captcha.py names its origins).
    extra = "".join(f" {origin}" for origin in (PROVIDERS[provider].origins if provider in PROVIDERS else ()))
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self'{extra}",
        # Inline style attributes and <style> (the ask's own styles, charts): styles cannot run code.
        # hCaptcha's widget loads its own stylesheet as well.
        f"style-src 'self' 'unsafe-inline'{extra if provider == 'hcaptcha' else ''}",
        f"frame-src 'self'{extra}",
        f"connect-src 'self'{extra}",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        f"frame-ancestors {frame_ancestors}",
    ])


def static_headers(config: Mapping, frame_ancestors: str = "'none'") -> list[tuple[str, str]]:
    """The headers every answer carries, as (name, value) pairs: for answers made outside Flask too."""
    headers = [
        ("Content-Security-Policy", content_security_policy(config, frame_ancestors)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    if frame_ancestors == "'none'":
        # For browsers without CSP level 2; it cannot name a list of origins, so the embed frame goes without.
        headers.append(("X-Frame-Options", "DENY"))
    if config.get("HSTS_ENABLED"):
        headers.append(("Strict-Transport-Security", HSTS))
    return headers


def allow_framing_by(origins: list[str]) -> None:
    """Let this request's page be framed by ``origins`` (none: by nobody): the embed's iframe only."""
    g.frame_ancestors = " ".join(origins) or "'none'"


def init_app(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        for name, value in static_headers(app.config, g.get("frame_ancestors", "'none'")):
            response.headers[name] = value
        if request.path.startswith("/account"):
            # Manage links carry a token in the path: it must not leave in a Referer header.
            response.headers["Referrer-Policy"] = "no-referrer"
        return response
