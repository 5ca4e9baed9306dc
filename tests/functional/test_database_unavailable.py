"""Any page while the database is away (restarting, failing over, out of connections): a 503 that says to come
back, with Retry-After, in the reader's language, and no traceback in the log. A bug stays a 500."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError


@contextmanager
def refusing(connection):
    """Every statement on the test's connection fails as PostgreSQL's do while it shuts down."""
    def refuse(conn, cursor, statement, parameters, context, executemany):
        raise OperationalError(statement, {}, Exception("the database system is shutting down"))

    sa_event.listen(connection, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        sa_event.remove(connection, "before_cursor_execute", refuse)


@pytest.fixture
def database_away(connection):
    with refusing(connection):
        yield


@pytest.mark.parametrize("language,heading,message", [
    ("en", "Back in a moment", "We cannot reach our records just now. Nothing was charged; please try again in a minute."),
    ("de", "Gleich wieder da", "Es wurde nichts abgebucht; bitte versuchen Sie es in einer Minute noch einmal."),
    ("fr", "De retour dans un instant", "Rien n’a été débité ; veuillez réessayer dans une minute."),
])
def test_a_reader_page_says_to_come_back_in_their_language(client, database_away, caplog, language, heading,
                                                          message):
    with caplog.at_level(logging.WARNING):
        response = client.get("/donate", headers={"Accept-Language": language})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    page = response.get_data(as_text=True)
    assert heading in page and message in page
    assert "database unavailable on GET /donate: the database system is shutting down" in caplog.text
    assert "Traceback" not in caplog.text


def test_the_api_answers_503_in_json_and_stores_nothing(client, database_away):
    response = client.post("/api/v1/checkout-sessions", json={"campaign": "default", "amount": 2500, "currency": "EUR",
                                                               "email": "ada@example.com", "frequency": "one_off"})

    assert response.status_code == 503 and response.is_json, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "30"
    assert response.get_json() == {"error": "The database is unavailable; nothing was stored. Please try again."}


def test_a_bug_is_still_a_500_with_its_traceback_logged(client, monkeypatch, caplog):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("donations.checkout.views.render_template", bug)
    with caplog.at_level(logging.ERROR):
        response = client.get("/donate")

    assert response.status_code == 500 and "Retry-After" not in response.headers
    assert "Something went wrong on our side. Nothing was charged." in response.get_data(as_text=True)
    assert "ZeroDivisionError: a bug" in caplog.text


@pytest.mark.parametrize("path", ["/staff/", "/staff/jobs", "/staff/campaigns"])
def test_a_signed_in_staff_member_gets_the_503_too(client, connection, path):
    """The error page must not look up who is signed in: that lookup needs the database too."""
    from tests.staff_helpers import signed_in

    staff = signed_in(client, "admin")
    with refusing(connection):
        response = staff.get(path)

    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert "We cannot reach our records just now." in response.get_data(as_text=True)
