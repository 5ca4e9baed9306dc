"""The schema exists only through the migrations: what they build must be exactly what the models describe."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, inspect, select

from donations.campaigns.models import Campaign
from donations.extensions import db


def schema_diff(connection, app) -> list:
    # The options Flask-Migrate's autogenerate uses, plus server defaults, so that
    # `flask db migrate` on an up-to-date database would produce an empty migration.
    opts = {**app.extensions["migrate"].configure_args, "compare_type": True, "compare_server_default": True}
    context = MigrationContext.configure(connection, opts=opts)
    return compare_metadata(context, db.metadata)


def test_migrations_build_every_table_the_models_describe(app_ctx, connection):
    assert set(db.metadata.tables) <= set(inspect(connection).get_table_names())


def test_migrated_schema_matches_the_models(app_ctx, connection):
    assert schema_diff(connection, app_ctx) == []


def test_migrations_create_the_check_constraints_of_the_models(app_ctx, connection):
    # Autogenerate does not compare CHECK constraints; they guard amounts and enum values.
    inspector = inspect(connection)
    expected = {(table.name, c.name) for table in db.metadata.sorted_tables
                for c in table.constraints if isinstance(c, CheckConstraint)}
    actual = {(table.name, c["name"]) for table in db.metadata.sorted_tables
              for c in inspector.get_check_constraints(table.name)}
    assert ("donations", "ck_donations_amount_positive") in expected
    assert actual == expected


def test_migrations_seed_the_default_ask(app_ctx):
    campaign = db.session.scalars(select(Campaign).where(Campaign.slug == "default")).one()
    assert campaign.headline == "Consider donating to support our work"
    assert campaign.active is True
    assert campaign.preset_amounts("one_off", "EUR") == [1000, 2500, 5000, 10000]
