"""Supporter search by email prefix uses an index on PostgreSQL (text_pattern_ops for LIKE 'abc%')

Revision ID: 7a3c9e2d4b10
Revises: 322539a6d365
Create Date: 2026-11-26 12:05:00

"""
from alembic import op

revision = "7a3c9e2d4b10"
down_revision = "322539a6d365"
branch_labels = None
depends_on = None


def upgrade():
    # The unique index on email follows the database's collation, which LIKE 'prefix%' cannot use on
    # PostgreSQL; SQLite ignores the operator class and gets a plain index.
    op.create_index("ix_supporters_email_pattern", "supporters", ["email"],
                    postgresql_ops={"email": "text_pattern_ops"})


def downgrade():
    op.drop_index("ix_supporters_email_pattern", table_name="supporters")
