"""Donations and payouts know the day they are in the books (closed periods move late ones), payouts
their own balance transaction and how often fetching their lines failed

Revision ID: f6efc97dc119
Revises: 841d589d955c
Create Date: 2026-11-26 13:49:19.094445

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f6efc97dc119'
down_revision = '841d589d955c'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('booked_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('booking_note', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_donations_booked_on'), ['booked_on'], unique=False)

    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reconcile_tries', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reconcile_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('booked_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('stripe_balance_transaction_id', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_payouts_booked_on'), ['booked_on'], unique=False)

    # Existing rows are in the books on the day they were paid (UTC) or arrived: nothing was closed before.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE donations SET booked_on = (paid_at AT TIME ZONE 'UTC')::date WHERE paid_at IS NOT NULL")
    else:
        op.execute("UPDATE donations SET booked_on = date(paid_at) WHERE paid_at IS NOT NULL")
    op.execute("UPDATE payouts SET booked_on = arrival_date")


def downgrade():
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_booked_on'))
        batch_op.drop_column('stripe_balance_transaction_id')
        batch_op.drop_column('booked_on')
        batch_op.drop_column('reconcile_error')
        batch_op.drop_column('reconcile_tries')

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_donations_booked_on'))
        batch_op.drop_column('booking_note')
        batch_op.drop_column('booked_on')

