"""Annual donation statements (numbered per fiscal year) and attachments described on outbox emails

Revision ID: 1afd3a9a9906
Revises: 301baebcfd6e
Create Date: 2026-11-26 12:57:00.360700

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '1afd3a9a9906'
down_revision = '301baebcfd6e'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('statement_sequences',
    sa.Column('fiscal_year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('fiscal_year', name=op.f('pk_statement_sequences'))
    )
    op.create_table('annual_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('reissued_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('reissued_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_annual_statements_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annual_statements')),
    sa.UniqueConstraint('number', name=op.f('uq_annual_statements_number')),
    sa.UniqueConstraint('supporter_id', 'fiscal_year', name=op.f('uq_annual_statements_supporter_id'))
    )
    # Existing emails have no attachments: the server default fills them in, and new rows say so themselves.
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attachments', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                                        server_default='[]', nullable=False))


def downgrade():
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_column('attachments')
    op.drop_table('annual_statements')
    op.drop_table('statement_sequences')
