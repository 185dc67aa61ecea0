"""usage partitions: PostgreSQL's raw usage events by month of receipt, and a global dedupe key

Revision ID: 0016_usage_partitions
Revises: 0015_typed_lists
Create Date: 2026-12-02 04:00:00

PostgreSQL only (SQLite keeps its table): ``usage_event`` becomes ``PARTITION BY LIST (bucket)``,
``bucket`` the month an event was received in (``YYYYMM`` of ``received_at_us``), 0 for test
clocks' accounts (``usage_event_kept``); ``usage_event_key (account_id, event_id)`` takes the
exactly-once primary key (storage/partitions.py says why). The rows are copied, in this one
transaction, which holds ``usage_event`` for its whole length: run it in a maintenance window,
timed on a copy of the database first (docs/decisions.md).

Downgrade copies the rows back into one table with its primary key and drops the partitions, the
key table and any month a purge had detached but not dropped yet (its events were being
deleted).
"""
from collections.abc import Sequence
import sqlalchemy as sa
from alembic import op

from billing_svc.clock import SYSTEM_CLOCK

revision: str = '0016_usage_partitions'
down_revision: str | None = '0015_typed_lists'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("account_id, event_id, tenant_id, partner_id, kind, quantity, occurred_at_us, "
            "period, late, received_at_us")
_TABLE = """(
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
_BUCKET = ("(EXTRACT(YEAR FROM to_timestamp(e.received_at_us / 1000000.0) AT TIME ZONE 'UTC') "
           "* 100 + EXTRACT(MONTH FROM to_timestamp(e.received_at_us / 1000000.0) AT TIME ZONE "
           "'UTC'))::integer")
_AHEAD_MONTHS = 2


def _months_from_now() -> list[int]:
    now = SYSTEM_CLOCK.now()  # the service makes its own clock's months at its start
    year, month = now.year, now.month
    buckets = []
    for _ in range(_AHEAD_MONTHS + 1):
        buckets.append(year * 100 + month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return buckets


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_event RENAME TO usage_event_unpartitioned")
    op.execute(f"CREATE TABLE usage_event {_TABLE},\n    bucket INTEGER NOT NULL DEFAULT 0\n) "
               "PARTITION BY LIST (bucket)")
    op.execute("CREATE INDEX ix_usage_event_account_time ON usage_event "
               "(account_id, occurred_at_us)")
    op.execute("CREATE TABLE usage_event_kept PARTITION OF usage_event FOR VALUES IN (0)")
    # A test clock's account's received_at_us is its clock's time: its events go to the kept
    # partition, as ingestion sends them.
    bucket = f"CASE WHEN a.test_clock_id IS NOT NULL THEN 0 ELSE {_BUCKET} END"
    source = ("FROM usage_event_unpartitioned e "
              "LEFT JOIN account a ON a.account_id = e.account_id")
    buckets = set(bind.execute(sa.text(f"SELECT DISTINCT {bucket} {source}")).scalars())
    for month in sorted((buckets | set(_months_from_now())) - {0}):
        op.execute(f"CREATE TABLE usage_event_p{month:06d} PARTITION OF usage_event "
                   f"FOR VALUES IN ({month})")
    op.execute(f"INSERT INTO usage_event ({_COLUMNS}, bucket) "
               f"SELECT {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))}, {bucket} "
               f"{source}")
    op.execute("CREATE TABLE usage_event_key (\n"
               "    account_id VARCHAR(40) NOT NULL,\n"
               "    event_id VARCHAR(128) NOT NULL,\n"
               "    occurred_at_us BIGINT NOT NULL,\n"
               "    bucket INTEGER NOT NULL,\n"
               "    CONSTRAINT usage_event_key_pkey PRIMARY KEY (account_id, event_id))")
    op.execute("INSERT INTO usage_event_key (account_id, event_id, occurred_at_us, bucket) "
               "SELECT account_id, event_id, occurred_at_us, bucket FROM usage_event")
    op.execute("CREATE INDEX ix_usage_event_key_bucket ON usage_event_key (bucket)")
    op.execute("DROP TABLE usage_event_unpartitioned")
    op.execute("ANALYZE usage_event")
    op.execute("ANALYZE usage_event_key")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_event RENAME TO usage_event_partitioned")
    op.execute(f"CREATE TABLE usage_event {_TABLE},\n"
               "    CONSTRAINT usage_event_pkey PRIMARY KEY (account_id, event_id)\n)")
    op.execute(f"INSERT INTO usage_event ({_COLUMNS}) SELECT {_COLUMNS} "
               "FROM usage_event_partitioned")
    op.execute("DROP TABLE usage_event_partitioned")  # and its partitions
    detached = bind.execute(sa.text(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
        "AND relnamespace = current_schema()::regnamespace "
        "AND relname ~ '^usage_event_p[0-9]{6}$'")).scalars().all()
    for name in detached:
        op.execute(f"DROP TABLE {name}")
    op.execute("DROP TABLE usage_event_key")
