"""Outbox: when a send began (cleared when it ends) and how many possible duplicates a stopped sender caused

Revision ID: 5c0511e7dfd6
Revises: 6169cf927422
Create Date: 2026-11-26 13:33:28.448330

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c0511e7dfd6'
down_revision = '6169cf927422'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_started_at', sa.DateTime(timezone=True), nullable=True))
        # Existing rows get 0 through the server default, so the NOT NULL column is safe to add.
        batch_op.add_column(sa.Column('possible_duplicates', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_column('possible_duplicates')
        batch_op.drop_column('send_started_at')
