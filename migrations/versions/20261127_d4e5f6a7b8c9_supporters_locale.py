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


BATCH = 10_000  #: supporters per backfill transaction

#: Supporters from before take the language of the page of their first gift (one-off or recurring), as new ones
#: do (ledger.operations.note_language); erased supporters (their address at .invalid) keep none.
BACKFILL = """
UPDATE supporters SET locale = (
    SELECT a.locale FROM checkout_attempts a
    WHERE a.id IN (SELECT d.attempt_id FROM donations d WHERE d.supporter_id = supporters.id
                   UNION SELECT r.attempt_id FROM recurring_donations r WHERE r.supporter_id = supporters.id)
      AND a.locale IS NOT NULL AND a.locale <> ''
    ORDER BY a.created_at, a.id LIMIT 1)
WHERE locale IS NULL AND email NOT LIKE '%.invalid' AND id >= :low AND id < :high
"""


def upgrade():
    # Nullable without a default: on PostgreSQL a change of the catalogue only, no table rewrite.
    op.add_column("supporters", sa.Column("locale", sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        op.execute(sa.text(BACKFILL).bindparams(low=0, high=2**63 - 1))
        return
    # Batches of supporters, each its own short transaction (docs/deploy.md): no long lock on a big table, and
    # gifts booked meanwhile set the column themselves.
    with op.get_context().autocommit_block():
        high = op.get_bind().execute(sa.text("SELECT coalesce(max(id), 0) FROM supporters")).scalar_one()
        for low in range(0, high + 1, BATCH):
            op.execute(sa.text(BACKFILL).bindparams(low=low, high=low + BATCH))


def downgrade():
    op.drop_column("supporters", "locale")
