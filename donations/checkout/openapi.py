"""The OpenAPI 3 description of the public JSON API."""
from __future__ import annotations

from ..campaigns.operations import DEFAULT_SLUG
from ..ledger.models import Frequency

_ERRORS = {
    "description": "A field is missing or wrong; nothing was created.",
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}},
        "required": ["errors"],
    }}},
}


def openapi_document(config) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"{config['PUBLICATION_NAME']} donations API",
            "version": "1",
            "description": "Start a donation from your own front end, and read the ask's copy and amounts.",
        },
        "servers": [{"url": config["PUBLIC_URL"]}],
        "paths": {
            "/api/v1/checkout-sessions": {"post": {
                "summary": "Start a donation and get the checkout page to send the reader to",
                "parameters": [{
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "A UUID; repeating a request with the same key and body returns the same session.",
                    "schema": {"type": "string", "format": "uuid"},
                }],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["campaign", "amount", "currency", "frequency", "email"],
                    "properties": {
                        "campaign": {"type": "string", "example": DEFAULT_SLUG},
                        "amount": {"type": "integer", "minimum": 1,
                                   "description": "Minor units of the currency: 2500 is 25.00 EUR, 2500 is 2500 JPY."},
                        "currency": {"type": "string", "enum": list(config["CURRENCIES"])},
                        "frequency": {"type": "string", "enum": [f.value for f in Frequency]},
                        "email": {"type": "string", "format": "email", "maxLength": 254},
                        "name": {"type": "string", "maxLength": 200},
                        "article_url": {"type": "string", "format": "uri", "maxLength": 2000,
                                        "description": "The page the reader came from; the gift is counted "
                                                       "for this article (query strings other than utm_* "
                                                       "are dropped)."},
                        "variant": {"type": "string", "maxLength": 16, "example": "a",
                                    "description": "The key of the campaign's A/B variant the reader saw "
                                                   "(the embed's campaigns.json lists them); a key the "
                                                   "campaign does not have is refused, a paused variant's "
                                                   "gift is not attributed to it."},
                        "cover_fees": {"type": "boolean", "default": False},
                        "captcha_token": {
                            "type": "string", "maxLength": 4096,
                            "description": "The response of the CAPTCHA widget (Cloudflare Turnstile or hCaptcha, "
                                           "as configured), verified on the server. Required when the site asks "
                                           "for a CAPTCHA on every gift, and for everyone while attack mode is "
                                           "on; a missing or failed one is a 400 with errors.captcha_token.",
                        },
                        "success_url": {"type": "string", "format": "uri", "maxLength": 2000,
                                        "example": "https://publisher.example/thanks?session={CHECKOUT_SESSION_ID}",
                                        "description": "Where the checkout sends the reader after paying: "
                                                       "an absolute URL on one of the publication's sites "
                                                       "(ALLOWED_ORIGINS) or this service; "
                                                       "{CHECKOUT_SESSION_ID} is filled in. Default: our "
                                                       "thank-you page."},
                        "cancel_url": {"type": "string", "format": "uri", "maxLength": 2000,
                                       "description": "Where a reader who cancels goes back to, on the same "
                                                      "terms. Default: our donation form, filled in."},
                        "mailing_consent": {
                            "type": "boolean", "default": False,
                            "description": "The reader ticked \"Keep me informed about our work by email\" "
                                           "(ask them in your own form; never tick it for them).",
                        },
                    },
                }}}},
                "responses": {
                    "201": {"description": "Checkout session created", "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "url": {"type": "string", "format": "uri"}},
                        "required": ["id", "url"],
                    }}}},
                    "400": _ERRORS,
                    "429": {
                        "description": "Too many checkouts started from this address, for this email address or "
                                       "by everyone in a short time; nothing was created or charged.",
                        "headers": {"Retry-After": {"description": "Seconds to wait before trying again.",
                                                    "schema": {"type": "integer"}}},
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {"error": {"type": "string"}, "retry_after": {"type": "integer"}},
                            "required": ["error", "retry_after"],
                        }}},
                    },
                    "503": {"description": "The payment provider or the database is unavailable; nothing was "
                                           "created or charged. With the database away, Retry-After says when "
                                           "to try again.",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                },
            }},
            "/api/v1/campaigns/{slug}": {"get": {
                "summary": "The ask's copy and preset amounts",
                "parameters": [
                    {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "currency", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "locale", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "The campaign", "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {
                            "slug": {"type": "string"}, "headline": {"type": "string"}, "body": {"type": "string"},
                            "button_label": {"type": "string"}, "currency": {"type": "string"},
                            "currencies": {"type": "array", "items": {"type": "string"}},
                            "default_frequency": {"type": "string"},
                            "presets": {"type": "object", "additionalProperties": {"type": "array", "items": {
                                "type": "object",
                                "properties": {"amount": {"type": "integer"}, "major": {"type": "string"},
                                               "label": {"type": "string"}},
                            }}},
                        },
                    }}}},
                    "400": {"description": "The address holds a character no honest client sends (NUL).",
                            "content": {"application/json": {"schema": {
                                "type": "object", "properties": {"error": {"type": "string"}},
                                "required": ["error"]}}}},
                    "404": {"description": "No active campaign has this slug."},
                    "503": {"description": "The database is unavailable; try again after Retry-After seconds.",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
                },
            }},
        },
    }
