"""The supporter's language (supporters.locale): their emails and account pages follow it

Revision ID: d4e5f6a7b8c9
Revises: a2192dfbe33a
Create Date: 2026-11-27 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "d4e5f6a7b8c9"
down_revision = "a2192dfbe33a"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable without a default: on PostgreSQL a change of the catalogue only, no table rewrite. Supporters
    # from before keep None: their emails follow the locale of each gift's page, as they did.
    op.add_column("supporters", sa.Column("locale", sa.String(length=16), nullable=True))


def downgrade():
    op.drop_column("supporters", "locale")
