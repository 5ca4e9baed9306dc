"""Export files are stored in the database (export_chunks), not on one host's disk

Revision ID: f20028d79340
Revises: c3d9a0f1e6b2
Create Date: 2026-11-27 07:04:58.508722

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f20028d79340'
down_revision = 'c3d9a0f1e6b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('export_chunks',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['export_jobs.id'], name=op.f('fk_export_chunks_job_id_export_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'seq', name=op.f('pk_export_chunks'))
    )
    if op.get_bind().dialect.name == "postgresql":
        # Stored as written: a CSV would compress, but compressing 1 MiB chunks costs the export more time than
        # the disk it saves for a day; XLSX files are compressed already.
        op.execute("ALTER TABLE export_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('size_bytes', sa.BigInteger(), nullable=True))



def downgrade():
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.drop_column('size_bytes')

    op.drop_table('export_chunks')
