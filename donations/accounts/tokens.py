"""Signed, expiring, single-purpose links that let a supporter manage their gifts without a password."""
from __future__ import annotations

from flask import current_app
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

#: The salt makes a manage token useless for anything else signed with SECRET_KEY.
SALT = "donations.manage-link.v1"


class InvalidToken(ValueError):
    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def make_token(supporter_id: int, email: str) -> str:
    # The address is part of the token, so a link stops working if the supporter's address changes.
    return _serializer().dumps({"s": supporter_id, "e": email})


def read_token(token: str) -> tuple[int, str]:
    """The supporter id and email in a valid token; InvalidToken when tampered with or too old."""
    max_age = current_app.config["MANAGE_LINK_MAX_AGE_DAYS"] * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise InvalidToken(gettext("This link has expired."), expired=True) from None
    except BadSignature:
        raise InvalidToken(gettext("This link is not valid.")) from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int) or not isinstance(data.get("e"), str):
        raise InvalidToken(gettext("This link is not valid."))
    return data["s"], data["e"]


def manage_url(supporter_id: int, email: str) -> str:
    return f"{current_app.config['PUBLIC_URL']}/account/{make_token(supporter_id, email)}"
