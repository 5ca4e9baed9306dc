"""Dashboard snapshots: money raised before a day, added to the live part; recurring gifts indexed by cancellation

Revision ID: a2192dfbe33a
Revises: f20028d79340
Create Date: 2026-11-27 07:48:38.356683

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a2192dfbe33a'
down_revision = 'f20028d79340'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dashboard_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('watermark', sa.BigInteger(), nullable=False),
    sa.Column('pending_ids', sa.JSON(), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('days', sa.JSON(), nullable=False),
    sa.Column('campaigns', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashboard_snapshots')),
    sa.UniqueConstraint('day', name=op.f('uq_dashboard_snapshots_day'))
    )
    op.create_table('dashboard_snapshot_articles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('article_url', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('place', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['snapshot_id'], ['dashboard_snapshots.id'], name=op.f('fk_dashboard_snapshot_articles_snapshot_id_dashboard_snapshots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashboard_snapshot_articles'))
    )
    op.create_index('ix_dashboard_snapshot_articles_place', 'dashboard_snapshot_articles', ['snapshot_id', 'place'])
    op.create_index('ix_dashboard_snapshot_articles_article', 'dashboard_snapshot_articles',
                    ['snapshot_id', 'article_url'])
    # The dashboard counts cancelled recurring gifts per period and month. Built without blocking writes to a
    # live table on PostgreSQL (docs/deploy.md).
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index('ix_recurring_donations_canceled_at', 'recurring_donations', ['canceled_at'],
                            postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index('ix_recurring_donations_canceled_at', 'recurring_donations', ['canceled_at'])


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index('ix_recurring_donations_canceled_at', table_name='recurring_donations',
                          postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index('ix_recurring_donations_canceled_at', table_name='recurring_donations')
    op.drop_index('ix_dashboard_snapshot_articles_article', table_name='dashboard_snapshot_articles')
    op.drop_index('ix_dashboard_snapshot_articles_place', table_name='dashboard_snapshot_articles')
    op.drop_table('dashboard_snapshot_articles')
    op.drop_table('dashboard_snapshots')
