"""money columns widened to NUMERIC(28, 9)

Revision ID: 0008_money_columns
Revises: 0007_tokens
Create Date: 2026-11-25 10:00:00

NUMERIC(20, 9) held amounts below 10^11: 10^13 messages at $0.05 could not be invoiced on
PostgreSQL. NUMERIC(28, 9) holds anything a google.type.Money carries (domain/bounds.py).
Widening keeps every stored value as it is. On SQLite amounts are decimal text whatever the
precision (storage/types.py), so there is nothing to change there.
"""
from collections.abc import Sequence

from alembic import op

import billing_svc.storage.types

revision: str = '0008_money_columns'
down_revision: str | None = '0007_tokens'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("invoice", "subtotal"), ("invoice", "total"), ("invoice", "amount_paid"),
            ("account_credit", "amount"), ("account_credit", "remaining"),
            ("budget", "limit_amount"))


def _alter(precision: int, scale: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in _COLUMNS:
        op.alter_column(table, column, nullable=False,
                        type_=billing_svc.storage.types.ExactDecimal(precision, scale))


def upgrade() -> None:
    _alter(28, 9)


def downgrade() -> None:
    # Fails, as it should, if an amount of 10^11 or more was stored since.
    _alter(20, 9)
