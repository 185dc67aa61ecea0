"""test clocks: a sandbox's own time, and the accounts that live on it

Revision ID: 0014_test_clocks
Revises: 0012_retention
Create Date: 2026-12-02 01:00:00.000000

Existing accounts have no clock (NULL): they keep living on the real time.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import billing_svc.storage.types

revision: str = '0014_test_clocks'
down_revision: str | None = '0012_retention'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'test_clock',
        sa.Column('test_clock_id', _TEXT(length=40), nullable=False),
        sa.Column('name', _TEXT(length=200), nullable=False),
        sa.Column('frozen_time', billing_svc.storage.types.UTCDateTime(), nullable=False),
        sa.Column('status', _TEXT(length=20), nullable=False),
        sa.Column('advancing_to', billing_svc.storage.types.UTCDateTime(), nullable=True),
        sa.Column('created_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
        sa.Column('updated_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('test_clock_id'),
    )
    op.create_index(op.f('ix_test_clock_status'), 'test_clock', ['status'], unique=False)
    op.add_column('account', sa.Column('test_clock_id', _TEXT(length=40), nullable=True))
    op.create_index(op.f('ix_account_test_clock_id'), 'account', ['test_clock_id'], unique=False)


def downgrade() -> None:
    # The schema before cannot tell a clock account from a real one: delete the test clocks
    # (DeleteTestClock) before downgrading. Not batch mode: recreating ``account`` on SQLite
    # trips its foreign keys.
    op.drop_index(op.f('ix_account_test_clock_id'), table_name='account')
    op.drop_column('account', 'test_clock_id')
    op.drop_index(op.f('ix_test_clock_status'), table_name='test_clock')
    op.drop_table('test_clock')
