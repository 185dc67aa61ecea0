"""PostgreSQL's raw usage events at year scale: ``usage_event`` partitioned by month of receipt,
and the global dedupe key table beside it (docs/decisions.md, "Usage on PostgreSQL").

Why a module of its own: SQLite keeps one ``usage_event`` table (its layout is its own), while
on PostgreSQL retention drops whole partitions instead of deleting rows, which needs DDL at run
time (partitions made ahead of need, detached and dropped by the purge) and objects the SQLModel
tables do not describe (the ``bucket`` column, the partitions, ``usage_event_key``). Everything
that knows about them is here.

- ``usage_event`` is ``PARTITION BY LIST (bucket)``. ``bucket`` is the month the service stored
  the event in, by its own clock (``YYYYMM``), or 0 (``usage_event_kept``) for the events of
  test clocks' accounts and those a purge keeps when it drops their month. Neither an event's
  ``occurred_at`` (a test clock puts it anywhere in time) nor a clock account's
  ``received_at_us`` (the clock's time) is the key: a month's partition only ever takes events
  while that month is the present, so once the purge horizon has passed it, nothing writes to
  it and it can be emptied of what is kept and dropped.
- ``usage_event_key (account_id, event_id)`` is the exactly-once key for the whole retention
  window (a unique index on a partitioned table must hold the partition key). Ingestion writes it
  in the event's transaction; a replica's concurrent insert of the same key fails with a unique
  violation, as the old primary key did. ``occurred_at_us`` finds the event's row for conflict
  detection; ``bucket`` (indexed: today's values, so the index's hot page is its last) is how
  the purge finds the keys of months it dropped.
- No DEFAULT partition: it would forbid ``DETACH PARTITION … CONCURRENTLY``. Partitions are made
  ahead instead (the migration, the server's start, every scheduler tick) and, as a last resort,
  by ingestion itself when a group's month has none (``MissingPartition``).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from billing_svc.storage.db import Database

log = structlog.get_logger("billing_svc.partitions")

PARENT = "usage_event"
KEYS = "usage_event_key"
KEPT = 0  # the bucket of test clocks' events and of the events a purge keeps
KEPT_PARTITION = "usage_event_kept"
AHEAD_MONTHS = 2  # partitions made past the current month
INDEXES = ("ix_usage_event_account_time", "ix_usage_event_key_bucket")
# Partition DDL of every replica, one at a time (creation; the purge holds its own key).
_DDL_LOCK_KEY = 0x62696C6D
_PURGE_LOCK_KEY = 0x62696C70
# How long partition DDL waits for a lock before giving up: it never queues ingestion (its
# SHARE UPDATE EXCLUSIVE lock on the parent does not conflict with inserts), but it must not
# hang a writer that needs a partition behind a long DETACH.
_DDL_LOCK_TIMEOUT = "5s"
_NAME = re.compile(r"^usage_event_p(\d{6})$")


class MissingPartition(Exception):
    """A group's month has no partition (the cache of this process was stale): make it, retry."""

    def __init__(self, bucket: int) -> None:
        super().__init__(f"no usage_event partition for bucket {bucket}")
        self.bucket = bucket


def bucket_of(at_us: int) -> int:
    """``YYYYMM`` of a UTC epoch-microseconds moment."""
    moment = datetime.fromtimestamp(at_us / 1_000_000, UTC)
    return moment.year * 100 + moment.month


def bucket_end_us(bucket: int) -> int:
    """The first microsecond after the month ``bucket``."""
    year, month = divmod(bucket, 100)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1_000_000


def next_bucket(bucket: int) -> int:
    year, month = divmod(bucket, 100)
    return (year + 1) * 100 + 1 if month == 12 else bucket + 1


def partition_name(bucket: int) -> str:
    return KEPT_PARTITION if bucket == KEPT else f"usage_event_p{bucket:06d}"


def is_partitioning_table(name: str | None) -> bool:
    return name in (KEYS, KEPT_PARTITION) or bool(name and _NAME.match(name))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's filter: the PostgreSQL-only objects of this module are not SQLModel tables, so
    the comparison of the tables with the migrations (and autogenerate) leaves them out."""
    if type_ == "table":
        return not is_partitioning_table(name)
    if type_ == "column":
        return not (name == "bucket" and obj.table.name in (PARENT, KEYS))
    if type_ == "index":
        return name not in INDEXES
    return True


# -- making partitions -----------------------------------------------------------------------

# Per Database: the buckets known to have a partition, so that a group checks a set, not the
# catalog.
_known: weakref.WeakKeyDictionary[Database, set[int]] = weakref.WeakKeyDictionary()


def attached(connection: Any) -> dict[int, bool]:
    """``bucket -> detach pending`` of the partitions attached to ``usage_event`` (over a
    SQLAlchemy connection or a psycopg one)."""
    statement = (
        "SELECT c.relname, i.inhdetachpending FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'usage_event'::regclass"
    )
    rows = (
        connection.exec_driver_sql(statement).all()
        if isinstance(connection, Connection)
        else connection.execute(statement).fetchall()
    )
    found = {}
    for name, pending in rows:
        match = _NAME.match(name)
        if match:
            found[int(match.group(1))] = bool(pending)
        elif name == KEPT_PARTITION:
            found[KEPT] = bool(pending)
    return found


def ensure(db: Database, buckets: Iterable[int], *, refresh: bool = False) -> int:
    """Make the partitions of ``buckets`` that do not exist; returns how many were made.

    ``CREATE TABLE … PARTITION OF`` would take an ACCESS EXCLUSIVE lock on ``usage_event`` and
    queue every ingestion behind it: a plain table attached afterwards takes SHARE UPDATE
    EXCLUSIVE only, which inserts do not wait for."""
    known = _known.setdefault(db, set())
    wanted = set(buckets)
    if not refresh and wanted <= known:
        return 0
    made = 0
    # db.write(): a database that went away is UNAVAILABLE to the caller, as for any write.
    with db.write() as session:
        connection = session.connection()
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{_DDL_LOCK_TIMEOUT}'")
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        present = attached(connection)
        for bucket in sorted(wanted - set(present)):
            name = partition_name(bucket)
            connection.exec_driver_sql(f"CREATE TABLE {name} (LIKE usage_event INCLUDING DEFAULTS)")
            connection.exec_driver_sql(
                f"ALTER TABLE usage_event ATTACH PARTITION {name} FOR VALUES IN ({bucket})"
            )
            made += 1
    known.clear()
    known.update(present)
    known.update(wanted)
    if made:
        log.info("usage_partitions_made", buckets=sorted(wanted - set(present)))
    return made


def ensure_ahead(db: Database) -> int:
    """The partitions of this month and the next ``AHEAD_MONTHS`` (the server's start and every
    scheduler tick): ingestion never has to make one."""
    if db.is_sqlite:
        return 0
    moment = db.clock.now()
    bucket = moment.year * 100 + moment.month
    buckets = [bucket]
    for _ in range(AHEAD_MONTHS):
        bucket = next_bucket(bucket)
        buckets.append(bucket)
    return ensure(db, buckets)


def forget(db: Database, bucket: int) -> None:
    _known.get(db, set()).discard(bucket)


def delete_keys(connection: Connection, account_ids: list[str]) -> None:
    """The dedupe keys of these accounts (a deleted test clock's)."""
    if connection.dialect.name == "postgresql" and account_ids:
        connection.exec_driver_sql(
            "DELETE FROM usage_event_key WHERE account_id = ANY(%s)", (account_ids,)
        )


# -- the purge's side ------------------------------------------------------------------------

# An event the purge deletes: of a period being purged, before the horizon, and not a storage
# reading kept as a tenant's last before a boundary. Everything else in a month it drops moves
# to the kept partition first.
_DELETED = (
    "e.occurred_at_us < %(horizon)s "
    "AND EXISTS (SELECT 1 FROM purge_pairs p WHERE p.account_id = e.account_id "
    "AND p.period = e.period) "
    "AND NOT (e.kind = 2 AND EXISTS (SELECT 1 FROM purge_keep k WHERE "
    "k.account_id = e.account_id AND k.tenant_id = e.tenant_id "
    "AND k.occurred_at_us = e.occurred_at_us))"
)
_EXPORT_CHUNK = 5000


class PartitionPurge:
    """The purge's DDL on one connection of its own, in autocommit mode: ``DETACH PARTITION …
    CONCURRENTLY`` cannot run inside a transaction block, and the purge's lists (the periods it
    purges, the readings it keeps) are temporary tables of that session."""

    def __init__(self, db: Database) -> None:
        import psycopg

        self.db = db
        dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.connection = psycopg.connect(dsn, autocommit=True)
        self.connection.execute(f"SET lock_timeout = '{_DDL_LOCK_TIMEOUT}'")

    def __enter__(self) -> PartitionPurge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()

    def lock(self, wait_seconds: float) -> bool:
        """One replica purges usage at a time (this session's lock, gone with the connection):
        False if another one held it for ``wait_seconds``."""
        import psycopg

        if wait_seconds <= 0:
            row = self.connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (_PURGE_LOCK_KEY,)
            ).fetchone()
            return bool(row and row[0])
        try:
            self.connection.execute(f"SET lock_timeout = '{int(wait_seconds * 1000)}ms'")
            self.connection.execute("SELECT pg_advisory_lock(%s)", (_PURGE_LOCK_KEY,))
            return True
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            self.connection.execute(f"SET lock_timeout = '{_DDL_LOCK_TIMEOUT}'")

    def load(self, pairs: Iterable[tuple[str, str]], keep: Iterable[tuple[str, str, int]]) -> None:
        """The ``(account, period)`` pairs being purged and the ``(account, tenant,
        occurred_at_us)`` storage readings kept."""
        execute = self.connection.execute
        execute(
            "CREATE TEMP TABLE IF NOT EXISTS purge_pairs (account_id text, period text, "
            "PRIMARY KEY (account_id, period))"
        )
        execute(
            "CREATE TEMP TABLE IF NOT EXISTS purge_keep (account_id text, tenant_id text, "
            "occurred_at_us bigint, PRIMARY KEY (account_id, tenant_id, occurred_at_us))"
        )
        execute("TRUNCATE purge_pairs, purge_keep")
        with self.connection.cursor() as cursor:
            with cursor.copy("COPY purge_pairs FROM STDIN") as copy:
                for pair in set(pairs):
                    copy.write_row(pair)
            with cursor.copy("COPY purge_keep FROM STDIN") as copy:
                for reading in set(keep):
                    copy.write_row(reading)
        execute("ANALYZE purge_pairs")
        execute("ANALYZE purge_keep")

    def droppable(self, horizon_us: int) -> list[tuple[int, str]]:
        """The months wholly before the horizon, oldest first, each with its state: ``attached``,
        ``pending`` (a detach was interrupted) or ``detached`` (a drop was interrupted)."""
        found = {
            bucket: "pending" if pending else "attached"
            for bucket, pending in attached(self.connection).items()
            if bucket != KEPT
        }
        for (name,) in self.connection.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relnamespace = current_schema()::regnamespace "
            "AND relname ~ '^usage_event_p[0-9]{6}$'"
        ).fetchall():
            found.setdefault(int(_NAME.match(name).group(1)), "detached")  # type: ignore[union-attr]  # the regex above matched
        return sorted(
            (bucket, state)
            for bucket, state in found.items()
            if bucket_end_us(bucket) <= horizon_us
        )

    def move_kept(self, bucket: int, horizon_us: int) -> int:
        """Move what the purge keeps of month ``bucket`` to the kept partition; returns how many
        rows. Nothing else writes to a month the horizon has passed, and a moved row is in one
        partition or the other in every snapshot (a cross-partition UPDATE)."""
        return int(
            self.connection.execute(
                "UPDATE usage_event e SET bucket = 0 "
                f"WHERE e.bucket = %(bucket)s AND NOT ({_DELETED})",
                {"bucket": bucket, "horizon": horizon_us},
            ).rowcount
        )

    def detach(self, bucket: int, state: str) -> None:
        name = partition_name(bucket)
        if state == "attached":
            self.connection.execute(f"ALTER TABLE usage_event DETACH PARTITION {name} CONCURRENTLY")
        elif state == "pending":
            self.connection.execute(f"ALTER TABLE usage_event DETACH PARTITION {name} FINALIZE")
        forget(self.db, bucket)

    def rows(self, bucket: int, columns: str) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of a detached month in chunks, in (account, time, event id) order."""
        name = partition_name(bucket)
        after: tuple[Any, ...] | None = None
        while True:
            where = "WHERE (account_id, occurred_at_us, event_id) > (%s, %s, %s) " if after else ""
            chunk = self.connection.execute(
                f"SELECT {columns} FROM {name} {where}"
                f"ORDER BY account_id, occurred_at_us, event_id LIMIT {_EXPORT_CHUNK}",
                after or (),
            ).fetchall()
            if not chunk:
                return
            yield chunk
            last = chunk[-1]
            after = (last[1], last[6], last[0])  # columns in EVENT_COLUMNS order

    def counts(self, bucket: int) -> dict[tuple[str, str], int]:
        return {
            (a, p): int(n)
            for a, p, n in self.connection.execute(
                f"SELECT account_id, period, count(*) FROM {partition_name(bucket)} "
                "GROUP BY account_id, period"
            ).fetchall()
        }

    def drop(self, bucket: int, counts: dict[tuple[str, str], int]) -> None:
        """Drop a detached month, and add its events to their purged periods' counts, in one
        transaction: a purge stopped before it finds the table again and counts it once."""
        with self.connection.transaction():
            with self.connection.cursor() as cursor:
                if counts:
                    cursor.executemany(
                        "UPDATE usage_purged_period SET events_deleted = events_deleted + %s "
                        "WHERE account_id = %s AND period = %s",
                        [(n, a, p) for (a, p), n in counts.items()],
                    )
            self.connection.execute(f"DROP TABLE {partition_name(bucket)}")


def sweep_keys_chunk(connection: Connection, horizon_us: int, limit: int) -> int:
    """Delete up to ``limit`` dedupe keys of events older than the horizon stored in a month
    before it; returns how many. Such an event is refused at the door (the horizon) before its
    key is ever read, so its key is dead weight; test clocks' keys (bucket 0) stay."""
    return int(
        connection.exec_driver_sql(
            "DELETE FROM usage_event_key WHERE ctid = ANY(ARRAY(SELECT ctid FROM usage_event_key "
            "WHERE bucket > 0 AND bucket < %s AND occurred_at_us < %s LIMIT %s))",
            (bucket_of(horizon_us), horizon_us, limit),
        ).rowcount
    )
