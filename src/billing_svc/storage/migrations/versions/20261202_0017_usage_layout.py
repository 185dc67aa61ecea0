"""usage layout: SQLite's raw usage events as an append-only log, deduplicated in the writer

Revision ID: 0017_usage_layout
Revises: 0016_usage_partitions
Create Date: 2026-12-02 07:10:00

SQLite only (PostgreSQL keeps its partitioned layout, storage/partitions.py): ``usage_event``
becomes a rowid table, ``log_id INTEGER PRIMARY KEY AUTOINCREMENT`` (never reused, even after a
purge deleted the newest rows) then today's ten columns, with no index on (account_id,
event_id): exactly-once is kept by the writer's in-process index, rebuilt from the log
(storage/event_index.py, docs/decisions.md "Random event ids on SQLite"). A partial index serves
the out-of-order storage readings; ``usage_log_mark`` maps the hour an event was received in to
the first log id of that hour (reconciliation and the purge scan the log from there). The rows
are copied in the order they were received, in this one transaction.

Downgrade copies the rows back into the keyed ``WITHOUT ROWID`` table.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0017_usage_layout'
down_revision: str | None = '0016_usage_partitions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("account_id, event_id, tenant_id, partner_id, kind, quantity, occurred_at_us, "
            "period, late, received_at_us")
_EVENT_COLUMNS = """
    account_id VARCHAR(40) NOT NULL,
    event_id VARCHAR(128) NOT NULL,
    tenant_id VARCHAR(40) NOT NULL,
    partner_id VARCHAR(40) NOT NULL,
    kind INTEGER NOT NULL,
    quantity BIGINT NOT NULL,
    occurred_at_us BIGINT NOT NULL,
    period VARCHAR(7) NOT NULL,
    late BOOLEAN NOT NULL,
    received_at_us BIGINT NOT NULL"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE usage_event_log (\n    log_id INTEGER PRIMARY KEY AUTOINCREMENT,"
               f"{_EVENT_COLUMNS}\n)")
    op.execute(f"INSERT INTO usage_event_log ({_COLUMNS}) SELECT {_COLUMNS} FROM usage_event "
               "ORDER BY received_at_us, account_id, event_id")
    op.execute("DROP TABLE usage_event")
    op.execute("ALTER TABLE usage_event_log RENAME TO usage_event")
    op.execute("CREATE INDEX ix_usage_event_storage ON usage_event "
               "(account_id, tenant_id, occurred_at_us) WHERE kind = 2")
    op.execute("CREATE TABLE usage_log_mark (\n    hour_us BIGINT NOT NULL PRIMARY KEY,\n"
               "    first_log_id BIGINT NOT NULL\n)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE usage_log_mark")
    op.execute("DROP INDEX ix_usage_event_storage")
    op.execute(f"CREATE TABLE usage_event_keyed ({_EVENT_COLUMNS},\n"
               "    PRIMARY KEY (account_id, event_id)\n) WITHOUT ROWID")
    op.execute(f"INSERT INTO usage_event_keyed ({_COLUMNS}) SELECT {_COLUMNS} FROM usage_event "
               "ORDER BY account_id, event_id")
    op.execute("DROP TABLE usage_event")
    op.execute("ALTER TABLE usage_event_keyed RENAME TO usage_event")
