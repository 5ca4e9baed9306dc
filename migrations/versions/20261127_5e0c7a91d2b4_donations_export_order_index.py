"""The donations export's order has an index (coalesce(paid_at, created_at), id): its COPYs in batches each start
where the last one ended

Revision ID: 5e0c7a91d2b4
Revises: f20028d79340
Create Date: 2026-11-27 08:20:00

"""
from alembic import op
import sqlalchemy as sa

revision = "5e0c7a91d2b4"
down_revision = "f20028d79340"
branch_labels = None
depends_on = None

ORDER = [sa.text("coalesce(paid_at, created_at)"), "id"]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return  # only the COPY path (PostgreSQL) reads in that order by batches; SQLite cannot reflect it
    # CONCURRENTLY: building it on a big table does not block gifts (docs/deploy.md); it cannot run inside a
    # transaction, hence the autocommit block.
    with op.get_context().autocommit_block():
        op.create_index("ix_donations_export_order", "donations", ORDER, postgresql_concurrently=True,
                        if_not_exists=True)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.drop_index("ix_donations_export_order", table_name="donations", postgresql_concurrently=True,
                      if_exists=True)
