"""/healthz (liveness) and /readyz (readiness): what a load balancer polls, never a 500, nothing secret."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from donations import create_app
from donations import config as app_config
from donations.extensions import db
from donations.health import migration_head


def test_liveness_answers_ok_without_the_database(client, monkeypatch):
    def no_database(*args, **kwargs):
        raise AssertionError("the liveness check touched the database")

    monkeypatch.setattr(db.session, "execute", no_database)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readiness_answers_ready_when_the_schema_is_at_the_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_readiness_is_503_while_the_schema_is_behind_the_head(app_ctx, client):
    db.session.execute(text("UPDATE alembic_version SET version_num = 'ace232010f5c'"))  # the initial schema
    db.session.commit()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "schema not at the migration head"}
    assert response.headers["Cache-Control"] == "no-store"


def test_the_head_is_the_newest_migration_file():
    assert len(migration_head()) == 12 and "," not in migration_head()


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://donations:secret-password@127.0.0.1:1/donations",  # nothing listens on port 1
    "sqlite:////nonexistent-directory/donations.sqlite3",
])
def test_readiness_is_503_when_the_database_is_unreachable(url, tmp_path):
    config = app_config.TestConfig(environ={**os.environ, "DATABASE_URL": url}, instance_path=str(tmp_path))
    config.SQLALCHEMY_DATABASE_URI = url
    app = create_app(config)
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "database unreachable"}
    assert "secret-password" not in response.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200  # alive: restarting it would not bring the database back
    with app.app_context():
        db.engine.dispose()
