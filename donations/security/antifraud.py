"""Card-testing defences on creating checkout sessions: rate limits, honeypot, fill time, attack mode.

Rate limits are counted by Flask-Limiter's storage (RATELIMIT_STORAGE_URI: memory for one process, Redis or
Memcached for several) through its ``limits`` strategies, checked explicitly by the views in a fixed order: per
client address, then per email address, then for everyone. The first limit breached stops the request, so one
address spending its own allowance does not also eat into the global one. Every check runs before any call to
the payment provider.
"""
from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from flask import current_app
from flask_babel import gettext, ngettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter

from ..db import now_utc
from ..extensions import db, limiter
from .ip import client_ip, hash_ip
from .models import SecurityState

ATTACK_MODE = "attack_mode"
#: The row whose ``started_at`` is when an admin last ended attack mode by hand (/staff/jobs): checkouts opened
#: before then no longer count towards a spike, so the next check does not switch it on again for the same one.
ATTACK_MODE_ENDED = "attack_mode_ended"
#: How long a web process trusts what it last read of attack mode (the scheduler switches it every minute).
ATTACK_CACHE_SECONDS = 5.0
#: A donation form older than this is refused as expired (the reader reloads the page).
FORM_MAX_AGE_SECONDS = 24 * 3600
#: In attack mode without a CAPTCHA provider, the per-address limit is divided by this.
ATTACK_FALLBACK_DIVISOR = 5
_STAMP_SALT = "donations.donate-form.started"


# -- rate limits ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitBreach:
    """A request over one of the checkout limits: which one, and in how many seconds to try again."""

    scope: str  #: "ip", "email" or "global"
    retry_after: int

    @property
    def message(self) -> str:
        """In the page's language (the donation form shows it to the reader)."""
        if self.retry_after < 120:
            return ngettext("Too many donation attempts in a short time. Nothing was charged; please try again in "
                            "%(num)s second.",
                            "Too many donation attempts in a short time. Nothing was charged; please try again in "
                            "%(num)s seconds.", self.retry_after)
        return ngettext("Too many donation attempts in a short time. Nothing was charged; please try again in "
                        "%(num)s minute.",
                        "Too many donation attempts in a short time. Nothing was charged; please try again in "
                        "%(num)s minutes.", max(1, math.ceil(self.retry_after / 60)))


@lru_cache(maxsize=64)
def parse_limits(value: str) -> tuple[RateLimitItem, ...]:
    """``"5 per minute;30 per hour"`` as limit items (ValueError for a string ``limits`` cannot read)."""
    return tuple(parse_many(value))


def _fallback(items: tuple[RateLimitItem, ...]) -> tuple[RateLimitItem, ...]:
    """The same windows with a fifth of the amount (at least 1): attack mode without a CAPTCHA."""
    return tuple(type(item)(max(1, item.amount // ATTACK_FALLBACK_DIVISOR), item.multiples, item.namespace)
                 for item in items)


def _strategy() -> RateLimiter:
    """A moving window where the storage has one (memory, Redis), so a burst straddling two fixed windows
    cannot pass twice the limit; a fixed window elsewhere (Memcached)."""
    storage = limiter.storage
    cached = current_app.extensions.get("checkout_rate_limiter")
    if cached is None or cached[0] is not storage:
        try:
            strategy: RateLimiter = MovingWindowRateLimiter(storage)
        except NotImplementedError:
            strategy = FixedWindowRateLimiter(storage)
        cached = current_app.extensions["checkout_rate_limiter"] = (storage, strategy)
    return cached[1]


def address_key() -> str:
    """The per-address limit's key: the client's IPv4 address, or its IPv6 /64 network (one customer's
    allocation: rotating addresses inside it must not escape the limit), under the keyed hash."""
    address = client_ip()
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return hash_ip(address) or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 6:
        return hash_ip(str(ipaddress.ip_network(f"{ip}/64", strict=False)))
    return hash_ip(str(ip))


def email_key(email: object) -> str | None:
    """The per-email limit's key: the address as typed, trimmed and lower-cased, under the keyed hash."""
    if not isinstance(email, str) or not email.strip() or len(email) > 254:
        return None
    return hash_ip("email:" + email.strip().lower())


def check_checkout_limits(email: object) -> LimitBreach | None:
    """Count one attempt to create a checkout against the limits; the first limit breached, or None.

    Called by the form and the API before anything else is done with the request.
    """
    config = current_app.config
    per_ip = parse_limits(config["CHECKOUT_LIMIT_PER_IP"])
    if attack_mode_active() and not captcha_configured():
        per_ip = _fallback(per_ip)
    scopes = (
        ("ip", per_ip, address_key()),
        ("email", parse_limits(config["CHECKOUT_LIMIT_PER_EMAIL"]), email_key(email)),
        ("global", parse_limits(config["CHECKOUT_LIMIT_GLOBAL"]), "all"),
    )
    try:
        return _first_breach(_strategy(), scopes)
    except Exception:  # the shared store (Redis…) is away: keep limiting, in this process's memory
        current_app.logger.exception("rate limit storage unreachable; checkout limits counted in memory")
        return _first_breach(_memory_strategy(), scopes)


def _first_breach(strategy: RateLimiter, scopes) -> LimitBreach | None:
    for scope, items, key in scopes:
        if key is None:
            continue
        for item in items:
            if not strategy.hit(item, "checkout", scope, key):
                reset = strategy.get_window_stats(item, "checkout", scope, key).reset_time
                current_app.logger.info("checkout limit %s (%s) reached", scope, item)
                return LimitBreach(scope, max(1, math.ceil(reset - time.time())))
    return None


def _memory_strategy() -> RateLimiter:
    """Per process, for while the configured storage cannot be reached (a fail-safe, not the normal path)."""
    strategy = current_app.extensions.get("checkout_rate_limiter_fallback")
    if strategy is None:
        strategy = current_app.extensions["checkout_rate_limiter_fallback"] = MovingWindowRateLimiter(MemoryStorage())
    return strategy


def captcha_configured() -> bool:
    return bool(current_app.config.get("CAPTCHA_PROVIDER"))


# -- honeypot and fill time -------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_STAMP_SALT)


def form_stamp(passed: bool = False) -> str:
    """The signed moment a donation form was rendered (the ``started`` field). ``passed``: dated FORM_MIN_SECONDS
    ago, so it passes at once (a form filled in again from the reader's own earlier attempt)."""
    started = time.time()
    if passed:
        started -= current_app.config["FORM_MIN_SECONDS"]
    return _serializer().dumps({"t": started})


class FormRefused(ValueError):
    """A form submission refused before it is read; the message is for the reader."""


def check_fill_time(stamp: object) -> None:
    """Raise FormRefused when the form came back faster than FORM_MIN_SECONDS after it was rendered, or with a
    missing, forged or expired stamp. Off when FORM_MIN_SECONDS is 0."""
    minimum = current_app.config["FORM_MIN_SECONDS"]
    if not minimum:
        return
    if not isinstance(stamp, str) or not stamp or len(stamp) > 200:
        raise FormRefused(gettext("This form could not be checked. Please look over your details and press Donate again."))
    try:
        payload = _serializer().loads(stamp, max_age=FORM_MAX_AGE_SECONDS)
    except SignatureExpired:
        raise FormRefused(gettext("This form has expired. Please look over your details and press Donate again.")) from None
    except BadSignature:
        raise FormRefused(gettext("This form could not be checked. Please look over your details and press Donate again.")) \
            from None
    started = payload.get("t") if isinstance(payload, dict) else None
    if not isinstance(started, (int, float)) or time.time() - started < minimum:
        raise FormRefused(gettext("That was quicker than a person can fill in the form. Please look over your "
                                  "details and press Donate again."))


# -- attack mode ------------------------------------------------------------------------------------


def attack_mode_until() -> datetime | None:
    """When attack mode ends, or None when it is off; read from the database at most every few seconds."""
    cache = current_app.extensions.setdefault("attack_mode_cache", {})
    now = time.monotonic()
    if cache.get("expires", 0) <= now:
        state = db.session.get(SecurityState, ATTACK_MODE)
        cache["until"] = state.active_until if state is not None else None
        cache["expires"] = now + ATTACK_CACHE_SECONDS
    until = cache["until"]
    if until is not None and until.tzinfo is None:  # SQLite hands back naive UTC
        from datetime import timezone

        until = until.replace(tzinfo=timezone.utc)
    return until if until is not None and until > now_utc() else None


def attack_mode_active() -> bool:
    return attack_mode_until() is not None


def forget_attack_mode() -> None:
    """Drop this process's cached view of attack mode (after switching it, and in tests)."""
    current_app.extensions.pop("attack_mode_cache", None)


def captcha_required() -> bool:
    """A gift needs the CAPTCHA: always (CAPTCHA_MODE=always), or while attack mode is on and a provider is set."""
    if not captcha_configured():
        return False
    return current_app.config["CAPTCHA_MODE"] == "always" or attack_mode_active()
