"""No open redirect: staff sign-in's ``next`` and the API's success and cancel URLs."""
from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import select

from donations.extensions import db
from donations.payments.models import SandboxObject
from tests.functional.helpers import hidden_value
from tests.staff_helpers import PASSWORD, make_user
from tests.unit.test_redirects import HOSTILE

API = {"campaign": "default", "amount": 2500, "currency": "EUR", "frequency": "one_off",
       "email": "reader@example.com"}
ISSUE_LIST = ["https://evil.example", "//evil", "/\\evil", "https:evil", "javascript:", "%2F%2Fevil",
              "https://pub@evil"]


def sign_in_with_next(client, next_value: str):
    _, email = make_user(client.application, "staff")
    page = client.get("/staff/login", query_string={"next": next_value})
    form = {"csrf_token": hidden_value(page.get_data(as_text=True), "csrf_token"), "email": email,
            "password": PASSWORD}
    return client.post("/staff/login", query_string={"next": next_value}, data=form)


def test_signing_in_returns_to_the_staff_page_asked_for(client):
    response = sign_in_with_next(client, "/staff/donations?status=refunded")

    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/donations?status=refunded"


def test_a_page_that_needs_sign_in_sends_there_and_back(client):
    _, email = make_user(client.application, "staff")
    bounce = client.get("/staff/supporters")
    login_url = bounce.headers["Location"]
    html = client.get(login_url).get_data(as_text=True)
    action = html_lib.unescape(re.search(r'<form[^>]*action="([^"]*)"', html).group(1))  # where the browser posts
    response = client.post(action, data={"csrf_token": hidden_value(html, "csrf_token"), "email": email,
                                         "password": PASSWORD})

    assert response.headers["Location"] == "/staff/supporters"


@pytest.mark.parametrize("target", [*HOSTILE, "/donate", "/account/x"])
def test_signing_in_never_leaves_the_staff_pages(client, target):
    if "\x00" in target:  # refused before any view runs (a NUL in the query: 400), so nobody signs in to go there
        assert client.get("/staff/login", query_string={"next": target}).status_code == 400
        return
    response = sign_in_with_next(client, target)

    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/"


def test_the_sign_in_form_drops_a_hostile_next(client):
    html = client.get("/staff/login", query_string={"next": "https://evil.example"}).get_data(as_text=True)

    assert "evil" not in html


def checkout_urls(response) -> dict:
    """The checkout session the sandbox opened for an API answer."""
    return db.session.get(SandboxObject, response.get_json()["id"]).data


def test_api_passes_allowlisted_return_urls_to_the_checkout(app_ctx, client):
    success = "https://publisher.example/thanks?session={CHECKOUT_SESSION_ID}"
    cancel = "https://publisher.example/support"

    response = client.post("/api/v1/checkout-sessions", json={**API, "success_url": success, "cancel_url": cancel})

    assert response.status_code == 201, response.get_json()
    data = checkout_urls(response)
    assert (data["success_url"], data["cancel_url"]) == (success, cancel)


def test_api_keeps_our_own_pages_by_default(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json=API)

    assert response.status_code == 201
    data = checkout_urls(response)
    assert data["success_url"] == "http://donations.test/thanks?session_id={CHECKOUT_SESSION_ID}"
    assert data["cancel_url"].startswith("http://donations.test/donate?attempt=")


def test_api_accepts_a_return_url_on_our_own_public_url(app_ctx, client):
    response = client.post("/api/v1/checkout-sessions", json={**API, "success_url": "http://donations.test/thanks"})

    assert response.status_code == 201


@pytest.mark.parametrize("field", ["success_url", "cancel_url"])
@pytest.mark.parametrize("target", [*HOSTILE, "/thanks", 42, ["https://publisher.example/"]])
def test_api_refuses_return_urls_elsewhere_by_field_and_opens_no_checkout(app_ctx, client, field, target):
    response = client.post("/api/v1/checkout-sessions", json={**API, field: target})

    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {field}
    message = response.get_json()["errors"][field]
    assert "https://publisher.example" in message or ("\x00" in target and "NUL" in message)
    assert db.session.scalars(select(SandboxObject)).first() is None


def test_the_issues_list_is_covered():
    assert set(ISSUE_LIST) <= set(HOSTILE)


def test_openapi_describes_the_return_urls(client):
    schema = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/checkout-sessions"]["post"]
    properties = schema["requestBody"]["content"]["application/json"]["schema"]["properties"]

    assert {"success_url", "cancel_url"} <= set(properties)
