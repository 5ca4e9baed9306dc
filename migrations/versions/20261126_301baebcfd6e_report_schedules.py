"""Report schedules: who receives the monthly accounting and the weekly supporter report, and when; seeded off

Revision ID: 301baebcfd6e
Revises: 912284fa0600
Create Date: 2026-11-26 12:59:39.509883

"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "301baebcfd6e"
down_revision = "912284fa0600"
branch_labels = None
depends_on = None

# A frozen copy of the table as this migration knows it; later model changes do not alter it.
report_schedules = sa.table(
    "report_schedules",
    sa.column("kind", sa.String),
    sa.column("enabled", sa.Boolean),
    sa.column("recipients", sa.JSON),
    sa.column("working_day", sa.Integer),
    sa.column("weekday", sa.Integer),
    sa.column("send_hour", sa.Integer),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade():
    op.create_table(
        "report_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Enum("monthly_accounting", "weekly_supporters", name="report_kind", native_enum=False,
                                  create_constraint=True, length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("working_day", sa.Integer(), server_default="1", nullable=False),
        sa.Column("weekday", sa.Integer(), server_default="0", nullable=False),
        sa.Column("send_hour", sa.Integer(), server_default="7", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("send_hour BETWEEN 0 AND 23", name=op.f("ck_report_schedules_send_hour_range")),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_report_schedules_weekday_range")),
        sa.CheckConstraint("working_day BETWEEN 1 AND 20", name=op.f("ck_report_schedules_working_day_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_schedules")),
        sa.UniqueConstraint("kind", name=op.f("uq_report_schedules_kind")),
    )
    # One row per report, off and without recipients until an admin names them: the first working day of
    # the month and Monday, from 07:00 UTC.
    now = datetime.now(timezone.utc)
    op.bulk_insert(report_schedules, [
        {"kind": kind, "enabled": False, "recipients": [], "working_day": 1, "weekday": 0, "send_hour": 7,
         "updated_at": now}
        for kind in ("monthly_accounting", "weekly_supporters")
    ])


def downgrade():
    op.drop_table("report_schedules")
