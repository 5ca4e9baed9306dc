"""Optional CAPTCHA (Cloudflare Turnstile or hCaptcha), verified on the server and failing closed.

https://developers.cloudflare.com/turnstile/get-started/server-side-validation/
https://docs.hcaptcha.com/#verify-the-user-response-server-side
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from flask import current_app

from ..i18n import N_
from .ip import client_ip

log = logging.getLogger(__name__)

#: Seconds to wait for the provider; a verification that cannot be made refuses the gift.
TIMEOUT = 5
#: Turnstile tokens are at most 2048 characters; hCaptcha's are shorter. Anything longer is not a token.
MAX_TOKEN = 4096


@dataclass(frozen=True)
class Provider:
    name: str
    verify_url: str
    script_url: str
    #: The form field the provider's widget fills in.
    response_field: str
    #: The class of the element the script turns into the widget.
    widget_class: str
    #: Origins the page must allow for the script and its frame (Content-Security-Policy).
    origins: tuple[str, ...]


PROVIDERS = {
    "turnstile": Provider("turnstile", "https://challenges.cloudflare.com/turnstile/v0/siteverify",
                          "https://challenges.cloudflare.com/turnstile/v0/api.js", "cf-turnstile-response",
                          "cf-turnstile", ("https://challenges.cloudflare.com",)),
    "hcaptcha": Provider("hcaptcha", "https://api.hcaptcha.com/siteverify", "https://js.hcaptcha.com/1/api.js",
                         "h-captcha-response", "h-captcha",
                         ("https://hcaptcha.com", "https://*.hcaptcha.com")),
}

UNVERIFIED = N_("Please confirm that you are a person (the check below the form), then press Donate again.")
UNAVAILABLE = N_("We could not check that you are a person just now. Nothing was charged; please try again "
                 "in a moment.")


class CaptchaFailed(ValueError):
    """The CAPTCHA was missing, wrong, or could not be verified; the message is for the reader."""


def provider() -> Provider | None:
    return PROVIDERS.get(current_app.config.get("CAPTCHA_PROVIDER") or "")


def verify(token: object) -> None:
    """Ask the provider whether ``token`` is a solved challenge; raise CaptchaFailed unless it says yes.

    Fails closed: a network error, a timeout, a non-200 answer, a body that is not JSON, ``success``
    not exactly true, or a ``hostname`` (where the challenge was solved) missing or not one of ours
    (:func:`allowed_hostnames`) all refuse.
    """
    chosen = provider()
    if chosen is None:
        raise CaptchaFailed(UNAVAILABLE)  # asked to verify with nothing to verify against: refuse
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN:
        raise CaptchaFailed(UNVERIFIED)
    config = current_app.config
    data = {"secret": config["CAPTCHA_SECRET_KEY"], "response": token}
    remote = client_ip()
    if remote:
        data["remoteip"] = remote
    if chosen.name == "hcaptcha":
        data["sitekey"] = config["CAPTCHA_SITE_KEY"]
    try:
        response = requests.post(config.get("CAPTCHA_VERIFY_URL") or chosen.verify_url, data=data, timeout=TIMEOUT)
    except requests.RequestException as exc:
        log.warning("captcha: %s verification failed: %s", chosen.name, type(exc).__name__)
        raise CaptchaFailed(UNAVAILABLE) from None
    if response.status_code != 200:
        log.warning("captcha: %s answered %s", chosen.name, response.status_code)
        raise CaptchaFailed(UNAVAILABLE)
    try:
        body = response.json()
    except ValueError:
        log.warning("captcha: %s answered with a body that is not JSON", chosen.name)
        raise CaptchaFailed(UNAVAILABLE) from None
    if not isinstance(body, dict) or body.get("success") is not True:
        codes = body.get("error-codes") if isinstance(body, dict) else None
        log.info("captcha: %s refused the token: %s", chosen.name, codes)
        raise CaptchaFailed(UNVERIFIED)
    solved_on = body.get("hostname")
    if not isinstance(solved_on, str) or solved_on.strip().lower().rstrip(".") not in allowed_hostnames():
        # A token solved on another site (relayed by a solving service, or a page of someone else's) is no
        # proof about this reader. Logged without the token, which could still be spent.
        log.warning("captcha: %s token was solved on %r, not on one of our hosts", chosen.name,
                    solved_on[:255] if isinstance(solved_on, str) else solved_on)
        raise CaptchaFailed(UNVERIFIED)


def allowed_hostnames() -> frozenset[str]:
    """The hosts the app serves its forms on: PUBLIC_URL's and those of ALLOWED_ORIGINS (the embed's pages)."""
    config = current_app.config
    hosts = set()
    for url in (config["PUBLIC_URL"], *config.get("ALLOWED_ORIGINS", ())):
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if host:
            hosts.add(host.lower().rstrip("."))
    return frozenset(hosts)
