"""Seed the default ask, so that a fresh install shows one

Revision ID: 5d1e0a7b9c21
Revises: ace232010f5c
Create Date: 2026-11-26 10:45:00

"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "5d1e0a7b9c21"
down_revision = "ace232010f5c"
branch_labels = None
depends_on = None

# A frozen copy of the table as this migration knows it; later model changes do not alter it.
campaigns = sa.table(
    "campaigns",
    sa.column("slug", sa.String),
    sa.column("name", sa.String),
    sa.column("headline", sa.String),
    sa.column("body", sa.Text),
    sa.column("button_label", sa.String),
    sa.column("presets", sa.JSON),
    sa.column("default_frequency", sa.String),
    sa.column("default_currency", sa.String),
    sa.column("active", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade():
    now = datetime.now(timezone.utc)
    op.bulk_insert(campaigns, [{
        "slug": "default",
        "name": "Default ask",
        "headline": "Consider donating to support our work",
        "body": "Help us to produce more articles like this. {publication} depends on donations "
                "from our readers to keep going.",
        "button_label": "Donate",
        "presets": {
            "one_off": {"EUR": [1000, 2500, 5000, 10000], "USD": [1000, 2500, 5000, 10000],
                        "GBP": [1000, 2500, 5000, 10000]},
            "monthly": {"EUR": [500, 1000, 2000], "USD": [500, 1000, 2000], "GBP": [500, 1000, 2000]},
            "yearly": {"EUR": [5000, 10000, 20000], "USD": [5000, 10000, 20000], "GBP": [5000, 10000, 20000]},
        },
        "default_frequency": "one_off",
        "default_currency": "EUR",
        "active": True,
        "created_at": now,
        "updated_at": now,
    }])


def downgrade():
    op.execute(campaigns.delete().where(campaigns.c.slug == "default"))
