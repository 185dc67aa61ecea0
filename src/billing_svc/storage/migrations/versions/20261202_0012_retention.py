"""retention: the purge horizon, purged periods, and indexes the purges read oldest-first

Revision ID: 0012_retention
Revises: 0011_hourly_reports
Create Date: 2026-12-02 01:00:00

``retention_state`` starts with its ``usage_horizon`` row at 0 (the epoch: nothing purged yet),
so that ingestion on PostgreSQL always has a row to share-lock and the first purge's update of
it waits for the groups in flight (services.retention).
"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import billing_svc.storage.types

revision: str = '0012_retention'
down_revision: str | None = '0011_hourly_reports'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    state = op.create_table(
        'retention_state',
        sa.Column('name', _TEXT(length=40), nullable=False),
        sa.Column('value_us', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'))
    op.bulk_insert(state, [{"name": "usage_horizon", "value_us": 0,
                            "updated_at": datetime(1970, 1, 1, tzinfo=UTC)}])  # value_us 0: no purge yet
    op.create_table(
        'usage_purged_period',
        sa.Column('account_id', _TEXT(length=40), nullable=False),
        sa.Column('period', _TEXT(length=7), nullable=False),
        sa.Column('horizon_us', sa.BigInteger(), nullable=False),
        sa.Column('started_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
        sa.Column('finished_at', billing_svc.storage.types.UTCDateTime(), nullable=True),
        sa.Column('events_deleted', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('account_id', 'period'))
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_event_created', ['created_at'], unique=False)
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_record_created', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_record_created')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_created')
    op.drop_table('usage_purged_period')
    op.drop_table('retention_state')
