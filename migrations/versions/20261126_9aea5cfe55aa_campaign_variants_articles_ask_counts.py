"""Campaigns get a schedule, a goal, rules for where they show, a placement, a frequency cap and A/B variants
(each campaign starts with its control "a"); articles and daily ask counts; gifts name their variant and article

Revision ID: 9aea5cfe55aa
Revises: fe47001309ed
Create Date: 2026-11-26 15:33:37.816212

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

JSON_LIST = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


# revision identifiers, used by Alembic.
revision = '9aea5cfe55aa'
down_revision = 'fe47001309ed'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('articles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('section', sa.String(length=100), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_articles')),
    sa.UniqueConstraint('url', name=op.f('uq_articles_url'))
    )
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_articles_author'), ['author'], unique=False)
        batch_op.create_index(batch_op.f('ix_articles_section'), ['section'], unique=False)

    op.create_table('campaign_variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('weight', sa.Integer(), server_default='1', nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('headline', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('button_label', sa.String(length=80), nullable=True),
    sa.Column('presets', sa.JSON(), nullable=True),
    sa.Column('default_frequency', sa.Enum('one_off', 'monthly', 'yearly', name='frequency', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('placement', sa.Enum('inline', 'banner', 'overlay', name='placement', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('after_paragraph', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_variants_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_variants')),
    sa.UniqueConstraint('campaign_id', 'key', name=op.f('uq_campaign_variants_campaign_id'))
    )
    with op.batch_alter_table('campaign_variants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_variants_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('ask_counts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('impressions', sa.Integer(), server_default='0', nullable=False),
    sa.Column('clicks', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_ask_counts_article_id_articles')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_ask_counts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['variant_id'], ['campaign_variants.id'], name=op.f('fk_ask_counts_variant_id_campaign_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('day', 'campaign_id', 'variant_id', 'article_id', name=op.f('pk_ask_counts'))
    )
    with op.batch_alter_table('ask_counts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ask_counts_article_id'), ['article_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ask_counts_campaign_id'), ['campaign_id', 'day'], unique=False)

    op.create_table('campaign_translations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('headline', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('button_label', sa.String(length=80), nullable=True),
    sa.Column('thank_you', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['variant_id'], ['campaign_variants.id'], name=op.f('fk_campaign_translations_variant_id_campaign_variants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_translations')),
    sa.UniqueConstraint('variant_id', 'locale', name=op.f('uq_campaign_translations_variant_id'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), server_default='en', nullable=False))
        batch_op.add_column(sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('goal_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('goal_currency', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('goal_period', sa.Enum('campaign', 'month', name='goal_period', native_enum=False, create_constraint=True, length=32), server_default='month', nullable=False))
        batch_op.add_column(sa.Column('sections', JSON_LIST, server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('url_patterns', JSON_LIST, server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('languages', JSON_LIST, server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('hide_from_supporters', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('placement', sa.Enum('inline', 'banner', 'overlay', name='placement', native_enum=False, create_constraint=True, length=32), server_default='inline', nullable=False))
        batch_op.add_column(sa.Column('after_paragraph', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cap_views', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cap_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('allocation', sa.Enum('split', 'thompson', name='allocation', native_enum=False, create_constraint=True, length=32), server_default='split', nullable=False))
        batch_op.add_column(sa.Column('allocation_floor', sa.Integer(), server_default='10', nullable=False))

    # Every campaign has its control variant, so every count and gift names a variant.
    op.execute(sa.text(
        "INSERT INTO campaign_variants (campaign_id, key, name, weight, active, created_at) "
        "SELECT id, 'a', 'Control', 1, :active, created_at FROM campaigns"
    ).bindparams(active=True))

    with op.batch_alter_table('checkout_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('article_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_checkout_attempts_variant_id_campaign_variants'), 'campaign_variants', ['variant_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_checkout_attempts_article_id_articles'), 'articles', ['article_id'], ['id'])

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('article_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_donations_article_id'), ['article_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_donations_variant_id'), ['variant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_donations_variant_id_campaign_variants'), 'campaign_variants', ['variant_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_donations_article_id_articles'), 'articles', ['article_id'], ['id'])

    with op.batch_alter_table('recurring_donations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('article_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_recurring_donations_article_id'), ['article_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recurring_donations_variant_id'), ['variant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_recurring_donations_article_id_articles'), 'articles', ['article_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_recurring_donations_variant_id_campaign_variants'), 'campaign_variants', ['variant_id'], ['id'])



def downgrade():
    with op.batch_alter_table('recurring_donations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_recurring_donations_variant_id_campaign_variants'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_recurring_donations_article_id_articles'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_recurring_donations_variant_id'))
        batch_op.drop_index(batch_op.f('ix_recurring_donations_article_id'))
        batch_op.drop_column('article_id')
        batch_op.drop_column('variant_id')

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_donations_article_id_articles'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_donations_variant_id_campaign_variants'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_donations_variant_id'))
        batch_op.drop_index(batch_op.f('ix_donations_article_id'))
        batch_op.drop_column('article_id')
        batch_op.drop_column('variant_id')

    with op.batch_alter_table('checkout_attempts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_checkout_attempts_article_id_articles'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_checkout_attempts_variant_id_campaign_variants'), type_='foreignkey')
        batch_op.drop_column('article_id')
        batch_op.drop_column('variant_id')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        # The enums' CHECKs first: SQLite's table copy would keep them, naming columns no longer there.
        for name in ('allocation', 'placement', 'goal_period'):
            batch_op.drop_constraint(name, type_='check')  # named by the convention: ck_campaigns_<name>
        batch_op.drop_column('allocation_floor')
        batch_op.drop_column('allocation')
        batch_op.drop_column('cap_days')
        batch_op.drop_column('cap_views')
        batch_op.drop_column('after_paragraph')
        batch_op.drop_column('placement')
        batch_op.drop_column('hide_from_supporters')
        batch_op.drop_column('languages')
        batch_op.drop_column('url_patterns')
        batch_op.drop_column('sections')
        batch_op.drop_column('goal_period')
        batch_op.drop_column('goal_currency')
        batch_op.drop_column('goal_amount')
        batch_op.drop_column('priority')
        batch_op.drop_column('ends_at')
        batch_op.drop_column('starts_at')
        batch_op.drop_column('language')

    op.drop_table('campaign_translations')
    with op.batch_alter_table('ask_counts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ask_counts_campaign_id'))
        batch_op.drop_index(batch_op.f('ix_ask_counts_article_id'))

    op.drop_table('ask_counts')
    with op.batch_alter_table('campaign_variants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_variants_campaign_id'))

    op.drop_table('campaign_variants')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_articles_section'))
        batch_op.drop_index(batch_op.f('ix_articles_author'))

    op.drop_table('articles')
