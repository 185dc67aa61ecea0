"""approval policies and change requests

Revision ID: 0010_change_requests
Revises: 0008_money_columns
Create Date: 2026-12-02 01:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import billing_svc.storage.types

revision: str = '0010_change_requests'
down_revision: str | None = '0008_money_columns'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('approval_policy',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('upgrades', sa.Boolean(), nullable=False),
    sa.Column('downgrades', sa.Boolean(), nullable=False),
    sa.Column('cancellations', sa.Boolean(), nullable=False),
    sa.Column('custom_terms', sa.Boolean(), nullable=False),
    sa.Column('base_fee_above', billing_svc.storage.types.ExactDecimal(precision=28, scale=9), nullable=True),
    sa.Column('updated_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.account_id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('change_request',
    sa.Column('change_request_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('change_json', sa.Text(), nullable=False),
    sa.Column('summary', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('requested_by_token_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
    sa.Column('expires_at', billing_svc.storage.types.UTCDateTime(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('decided_at', billing_svc.storage.types.UTCDateTime(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.account_id'], ),
    sa.PrimaryKeyConstraint('change_request_id')
    )
    with op.batch_alter_table('change_request', schema=None) as batch_op:
        batch_op.create_index('ix_change_request_account_status', ['account_id', 'status'], unique=False)
        batch_op.create_index('ix_change_request_status_expires', ['status', 'expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('change_request', schema=None) as batch_op:
        batch_op.drop_index('ix_change_request_status_expires')
        batch_op.drop_index('ix_change_request_account_status')
    op.drop_table('change_request')
    op.drop_table('approval_policy')
