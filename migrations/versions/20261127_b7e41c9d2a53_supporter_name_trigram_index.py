"""Supporter search by part of a name uses a trigram index on PostgreSQL (pg_trgm GIN for ILIKE '%abc%')

Revision ID: b7e41c9d2a53
Revises: 2e8a8c8fd47c
Create Date: 2026-11-27 07:20:00

"""
from alembic import op
import sqlalchemy as sa

revision = "b7e41c9d2a53"
down_revision = "2e8a8c8fd47c"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        # SQLite has no trigram index; a plain index keeps the schema the same as the models describe.
        op.create_index("ix_supporters_name_trgm", "supporters", ["name"])
        return
    # pg_trgm ships with PostgreSQL and is a trusted extension (13+): the database's owner may create it,
    # no superuser needed. A btree cannot serve ILIKE '%abc%'; without this index a search by part of a name
    # reads every supporter. CONCURRENTLY: building it on a big table does not block sign-ups and gifts
    # (docs/deploy.md); it cannot run inside a transaction, hence the autocommit block.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # The operator class is named with the schema the extension lives in: the app's tables may live in a
    # schema of their own (search_path) while the extension, once per database, is in another.
    schema = op.get_bind().execute(sa.text(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")).scalar_one()
    with op.get_context().autocommit_block():
        op.create_index("ix_supporters_name_trgm", "supporters", ["name"], postgresql_using="gin",
                        postgresql_ops={"name": f"{schema}.gin_trgm_ops"}, postgresql_concurrently=True,
                        if_not_exists=True)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index("ix_supporters_name_trgm", table_name="supporters")
        return
    with op.get_context().autocommit_block():
        op.drop_index("ix_supporters_name_trgm", table_name="supporters", postgresql_concurrently=True,
                      if_exists=True)
