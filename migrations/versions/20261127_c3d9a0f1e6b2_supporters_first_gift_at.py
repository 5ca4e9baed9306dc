"""When each supporter's first gift was paid (supporters.first_gift_at), for the dashboard's new supporters

Revision ID: c3d9a0f1e6b2
Revises: b7e41c9d2a53
Create Date: 2026-11-27 07:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = "c3d9a0f1e6b2"
down_revision = "b7e41c9d2a53"
branch_labels = None
depends_on = None

BATCH = 10_000  #: supporters per backfill transaction

PAID = "('succeeded', 'partially_refunded', 'refunded', 'disputed')"


def upgrade():
    # Nullable without a default: adding it rewrites nothing, on PostgreSQL a change of the catalogue only.
    op.add_column("supporters", sa.Column("first_gift_at", sa.DateTime(timezone=True), nullable=True))
    backfill = (f"UPDATE supporters SET first_gift_at = f.first FROM (SELECT supporter_id, min(paid_at) AS first "
                f"FROM donations WHERE status IN {PAID} AND paid_at IS NOT NULL AND supporter_id >= :low "
                f"AND supporter_id < :high GROUP BY supporter_id) AS f WHERE supporters.id = f.supporter_id")
    if op.get_bind().dialect.name != "postgresql":
        op.execute(sa.text(backfill).bindparams(low=0, high=2**63 - 1))
        op.create_index("ix_supporters_first_gift_at", "supporters", ["first_gift_at"])
        return
    # Batches of supporters, each its own short transaction (docs/deploy.md): no long lock on a big table,
    # and gifts booked meanwhile set the column themselves (ledger.operations.note_first_gift).
    with op.get_context().autocommit_block():
        high = op.get_bind().execute(sa.text("SELECT coalesce(max(id), 0) FROM supporters")).scalar_one()
        for low in range(0, high + 1, BATCH):
            op.execute(sa.text(backfill).bindparams(low=low, high=low + BATCH))
        op.create_index("ix_supporters_first_gift_at", "supporters", ["first_gift_at"],
                        postgresql_concurrently=True, if_not_exists=True)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index("ix_supporters_first_gift_at", table_name="supporters", postgresql_concurrently=True,
                          if_exists=True)
    else:
        op.drop_index("ix_supporters_first_gift_at", table_name="supporters")
    op.drop_column("supporters", "first_gift_at")
