"""Requests without a session cookie (every embed request from a publisher's pages) leave the session alone."""
from __future__ import annotations

from tests.staff_helpers import signed_in


def test_embed_script_does_not_vary_by_cookie_so_a_cdn_can_share_it(client):
    response = client.get("/embed/v1/cta.js")

    assert response.status_code == 200
    assert "Cookie" not in response.headers.get("Vary", "")
    assert "Set-Cookie" not in response.headers


def test_campaign_json_does_not_vary_by_cookie_or_set_one(client):
    response = client.get("/api/v1/campaigns/default")

    assert response.status_code == 200
    assert "Cookie" not in response.headers.get("Vary", "")
    assert "Set-Cookie" not in response.headers


def test_a_signed_in_staff_member_keeps_the_session_across_requests(client):
    staff = signed_in(client, "staff")

    page = client.get("/staff/")

    assert page.status_code == 200
    assert staff.email in page.get_data(as_text=True)
    assert "Cookie" in page.headers.get("Vary", "")  # pages read from the session still say so


def test_a_tampered_session_cookie_signs_nobody_in(client):
    client.set_cookie("session", "not-a-signed-value")

    response = client.get("/staff/")

    assert response.status_code == 302
    assert "/staff/login" in response.headers["Location"]
