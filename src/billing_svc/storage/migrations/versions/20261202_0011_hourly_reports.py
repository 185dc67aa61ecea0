"""hourly usage reports to billing systems

Revision ID: 0011_hourly_reports
Revises: 0010_change_requests
Create Date: 2026-12-02 01:00:00

usage_hourly keeps each hour's latest storage reading (the level held at the hour's end). Rows of
before this revision get their hour's highest reading as an approximation, at the hour's start:
no report covers them unless a new event changes their hour. Reports start with the hours that
get usage after the upgrade (usage_report_due is empty).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import billing_svc.storage.types

revision: str = '0011_hourly_reports'
down_revision: str | None = '0010_change_requests'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('usage_hourly', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_last_at_us', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('storage_bytes_last', sa.BigInteger(), server_default='0',
                                      nullable=False))
    op.execute("UPDATE usage_hourly SET storage_last_at_us = hour_us, "
               "storage_bytes_last = storage_bytes_max WHERE kind = 2")
    op.create_table('usage_report_due',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('hour_us', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('marked_at_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'hour_us')
    )
    op.create_table('usage_report',
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('hour_us', sa.BigInteger(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('tenants_json', sa.Text(), nullable=False),
    sa.Column('partners_json', sa.Text(), nullable=False),
    sa.Column('totals_json', sa.Text(), nullable=False),
    sa.Column('estimated_charges', billing_svc.storage.types.ExactDecimal(precision=28, scale=9), nullable=False),
    sa.Column('created_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sequence'),
    sa.UniqueConstraint('account_id', 'hour_us', 'revision')
    )
    with op.batch_alter_table('usage_report', schema=None) as batch_op:
        batch_op.create_index('ix_usage_report_account_sequence', ['account_id', 'sequence'],
                              unique=False)
    op.create_table('usage_report_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(sa.table("usage_report_head", sa.column("id", sa.Integer),
                            sa.column("sequence", sa.BigInteger)),
                   [{"id": 1, "sequence": 0}])


def downgrade() -> None:
    op.drop_table('usage_report_head')
    with op.batch_alter_table('usage_report', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_report_account_sequence')
    op.drop_table('usage_report')
    op.drop_table('usage_report_due')
    with op.batch_alter_table('usage_hourly', schema=None) as batch_op:
        batch_op.drop_column('storage_bytes_last')
        batch_op.drop_column('storage_last_at_us')
