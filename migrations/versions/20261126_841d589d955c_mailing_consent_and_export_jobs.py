"""Mailing consent on checkout attempts and supporters (given when, and in which words); background export jobs

Revision ID: 841d589d955c
Revises: 1afd3a9a9906
Create Date: 2026-11-26 12:58:03.690707

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '841d589d955c'
down_revision = '1afd3a9a9906'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('export_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('bom', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', name='export_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('rows_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("format IN ('csv', 'xlsx')", name=op.f('ck_export_jobs_format_known')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['staff_users.id'], name=op.f('fk_export_jobs_requested_by_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_jobs'))
    )
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_jobs_requested_by_id'), ['requested_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_export_jobs_status'), ['status'], unique=False)

    with op.batch_alter_table('checkout_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mailing_consent_source', sa.String(length=300), nullable=True))

    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mailing_consent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('mailing_consent_source', sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_supporters_mailing_consent_at'), ['mailing_consent_at'], unique=False)



def downgrade():
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supporters_mailing_consent_at'))
        batch_op.drop_column('mailing_consent_source')
        batch_op.drop_column('mailing_consent_at')

    with op.batch_alter_table('checkout_attempts', schema=None) as batch_op:
        batch_op.drop_column('mailing_consent_source')

    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_export_jobs_requested_by_id'))

    op.drop_table('export_jobs')
