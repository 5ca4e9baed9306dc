"""Outbox emails name the sender holding their claim; the missed-webhook sync keeps how far it has read

Revision ID: fe47001309ed
Revises: 5c0511e7dfd6
Create Date: 2026-11-26 14:17:43.070616

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fe47001309ed'
down_revision = '5c0511e7dfd6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('event_sync_cursors',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('read_until', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_sync_cursors'))
    )
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=32), nullable=True))



def downgrade():
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')

    op.drop_table('event_sync_cursors')
