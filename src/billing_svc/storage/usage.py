"""The ingestion hot path's SQL: set-based statements, one per kind of work per group of batches.

Written against the DB-API cursor (``executemany``) rather than the ORM: per-row ORM overhead would
cost more than the database does. The SQL is the same on SQLite and PostgreSQL except for the
parameter style and ``max``/``GREATEST``, and for raw events: PostgreSQL stores them by month,
with their exactly-once keys in a table of their own (storage.partitions); SQLite appends them
to a log whose exactly-once index lives in the writer's process (storage.event_index).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from billing_svc.domain.usage import FUTURE_TOLERANCE, MAX_COUNTER
from billing_svc.native import UsageCodec
from billing_svc.storage.event_index import USAGE_INDEX_KEY, EventIndex
from billing_svc.storage.types import IntList

_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
_EVENT_COLUMNS = (
    "event_id, account_id, tenant_id, partner_id, kind, quantity, occurred_at_us, "
    "period, late, received_at_us"
)
# One statement for both ways in: executemany here, and the kernel's own loop (which binds the
# ten parameters in this order).
_INSERT_EVENT = f"INSERT INTO usage_event ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
# PostgreSQL: the dedupe keys, then the events (storage.partitions), in the column order of
# the kernel's copy_rows too.
_COPY_KEYS = "COPY usage_event_key (account_id, event_id, occurred_at_us, bucket) FROM STDIN"
_COPY_EVENTS = f"COPY usage_event ({_EVENT_COLUMNS}, bucket) FROM STDIN"
_NATIVE_ROWS_PER_INSERT = 20  # ~12 % fewer instructions per row than one row per statement
# OR FAIL: a statement that fails stops there without undoing its own earlier rows, so SQLite
# keeps no statement journal for it (with the default ABORT every multi-row statement copies each
# page it is first to change). Nothing of such a statement stays: its batch's savepoint is rolled
# back whole.
_INSERT_EVENTS = _INSERT_EVENT.replace(
    "INSERT INTO", "INSERT OR FAIL INTO", 1
) + ",(?,?,?,?,?,?,?,?,?,?)" * (_NATIVE_ROWS_PER_INSERT - 1)
_PERIOD_ROWS = 100  # period counters per upsert on SQLite: 400 parameters


def _thresholds(stored: Any) -> tuple[int, ...]:
    """An account's threshold percentages as the driver returns them (JSON text on SQLite, a
    list on PostgreSQL); texts remembered, being what they decode to."""
    return _decoded(stored) if isinstance(stored, str) else IntList.decode(stored)


@functools.lru_cache(maxsize=1024)
def _decoded(text: str) -> tuple[int, ...]:
    return IntList.decode(text)


_HOUR_US = 3_600_000_000
# How far before a moment the log's scan starts (usage_log_mark): an event may be received up
# to FUTURE_TOLERANCE before it occurred, and a mark is written at its hour's first write.
MARK_MARGIN_US = int(FUTURE_TOLERANCE.total_seconds()) * 1_000_000 + _HOUR_US


class CounterFull(Exception):
    """A counter could not take what the group adds to it: nothing of the transaction may stay
    (services.ingestion redoes the group, checking each event against the counters)."""


def _add(table: str, column: str) -> str:
    """``column + excluded.column`` for an upsert, or NULL, which the column refuses (NOT NULL),
    when the sum would pass MAX_COUNTER. Left alone, SQLite would make the counter a float and
    PostgreSQL fail with 'bigint out of range'; this way both fail alike, as CounterFull."""
    return (
        f"CASE WHEN {table}.{column} <= {MAX_COUNTER} - excluded.{column} "
        f"THEN {table}.{column} + excluded.{column} END"
    )


class UsageStore:
    """Statements over one connection (inside the caller's transaction)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        # SQLite: the write connection's Database's index of the event log (storage.db).
        self.index: EventIndex | None = (
            None if self.postgres else connection.info.get(USAGE_INDEX_KEY)
        )
        # Kernel inserts bind the sqlite3 connection's own handle and probe the kernel's index;
        # PostgreSQL has COPY instead.
        # on PostgreSQL the kernel writes COPY data from the request's bytes (insert_native).
        self.native_inserts = self.postgres or (
            self.index is not None and self.index.kernel_table is not None
        )

    def _sqlite(self) -> sqlite3.Connection:
        # SQLAlchemy types it ``Any | None``; on SQLite it is the open sqlite3.Connection.
        return cast(sqlite3.Connection, self.connection.connection.driver_connection)

    def _ready_index(self) -> EventIndex:
        """The log's index, up to date for this transaction (SQLite's write lock is held)."""
        if self.index is None:
            raise RuntimeError(
                "raw usage events are written through Database.write() on SQLite: its "
                "connections carry the event log's index"
            )
        try:
            self.index.ready(self._sqlite())
        except sqlite3.Error as exc:  # wrapped as SQLAlchemy wraps its own (db.py maps them)
            raise DBAPIError.instance("catch_up", None, exc, sqlite3.Error) from exc
        return self.index

    def _mark_hour(self, index: EventIndex, received_at_us: int) -> None:
        """Write the hour's ``usage_log_mark`` (a log id at or before its first event) at the
        first insert of each hour; not for a test clock's events (their time is the clock's)."""
        hour_us = received_at_us - received_at_us % _HOUR_US
        if index.marked_hour_us != hour_us:
            self.connection.exec_driver_sql(
                "INSERT OR IGNORE INTO usage_log_mark (hour_us, first_log_id) VALUES (?, ?)",
                (hour_us, index.table.last_seen + 1),
            )
            index.marked_hour_us = hour_us

    def log_start(self, received_from_us: int) -> int:
        """SQLite: a log id before every event received at or after ``received_from_us`` (0:
        the log's start): scans of the log by time start after it."""
        rows = self._all(
            "SELECT first_log_id FROM usage_log_mark WHERE hour_us <= ? "
            "ORDER BY hour_us DESC LIMIT 1",
            [received_from_us - MARK_MARGIN_US],
        )
        return int(rows[0][0]) - 1 if rows else 0

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    # On SQLite the statements run on the sqlite3 connection itself, inside the transaction
    # SQLAlchemy began on it: its result and row objects cost more per statement and per row than
    # SQLite does here (docs/decisions.md, "Ingestion CPU with many accounts"). Errors are wrapped
    # as SQLAlchemy wraps its own (db.py maps them).

    def _all(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self.postgres:
            try:
                return self._sqlite().execute(statement, params).fetchall()
            except sqlite3.Error as exc:
                raise DBAPIError.instance(statement, params, exc, sqlite3.Error) from exc
        result = self.connection.exec_driver_sql(self._sql(statement), tuple(params))
        return [tuple(row) for row in result]

    def _many(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if not self.postgres:
            try:
                self._sqlite().executemany(statement, rows)
            except sqlite3.Error as exc:
                raise DBAPIError.instance(statement, rows, exc, sqlite3.Error) from exc
            return
        self.connection.exec_driver_sql(self._sql(statement), rows)

    def _in(self, statement: str, fixed: Sequence[Any], values: Iterable[Any]) -> list[tuple]:
        """Run ``statement`` (with ``{in}`` for the list) over ``values`` in chunks."""
        values = list(values)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows.extend(self._all(statement.format(marks=marks), [*fixed, *chunk]))
        return rows

    # -- references ----------------------------------------------------------------------------

    def accounts(self, account_ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """The accounts' rating fields, share-locked on PostgreSQL: closing a period locks its
        account exclusively, so an event is either in the invoice or marked late, never lost
        between the two."""
        lock = " ORDER BY account_id FOR SHARE" if self.postgres else ""
        rows = self._in(
            "SELECT account_id, plan_id, custom_terms_json, usage_thresholds "
            "FROM account WHERE account_id IN ({marks})" + lock,
            [],
            account_ids,
        )
        return {row[0]: (*row[:3], _thresholds(row[3])) for row in rows}

    def accounts_with_budgets(self, account_ids: Iterable[str]) -> set[str]:
        rows = self._in(
            "SELECT DISTINCT account_id FROM budget WHERE account_id IN ({marks})", [], account_ids
        )
        return {row[0] for row in rows}

    def tenant_owners(self, tenant_ids: Iterable[str]) -> dict[str, str]:
        return dict(
            self._in(
                "SELECT tenant_id, account_id FROM tenant WHERE tenant_id IN ({marks})",
                [],
                tenant_ids,
            )
        )

    def partner_owners(self, partner_ids: Iterable[str]) -> dict[str, str]:
        return dict(
            self._in(
                "SELECT partner_id, account_id FROM master_partner WHERE partner_id IN ({marks})",
                [],
                partner_ids,
            )
        )

    def invoiced_periods(self, account_ids: Iterable[str]) -> set[tuple[str, str]]:
        rows = self._in(
            "SELECT account_id, period FROM invoice WHERE account_id IN ({marks})", [], account_ids
        )
        return {(row[0], row[1]) for row in rows}

    def existing_events(
        self, account_id: str, event_ids: Iterable[str]
    ) -> dict[str, tuple[str, str, int, int, int]]:
        """Stored content ``(tenant, partner, kind, quantity, occurred_at_us)`` by event id."""
        if self.postgres:
            return self._existing_on_postgres(account_id, list(event_ids))
        # The index gives candidates (every log id whose entry has the key's hash, this
        # transaction's too); the rows say which are the key's. No row: a purged event's entry.
        index = self._ready_index()
        wanted = set(event_ids)
        log_ids = sorted(
            {log_id for event_id in wanted for log_id in index.probe(account_id, event_id)}
        )
        rows = self._in(
            "SELECT event_id, tenant_id, partner_id, kind, quantity, occurred_at_us, account_id "
            "FROM usage_event WHERE log_id IN ({marks})",
            [],
            log_ids,
        )
        return {
            row[0]: (row[1], row[2], row[3], row[4], row[5])
            for row in rows
            if row[6] == account_id and row[0] in wanted
        }

    def _existing_on_postgres(
        self, account_id: str, event_ids: list[str]
    ) -> dict[str, tuple[str, str, int, int, int]]:
        """The dedupe keys first (storage.partitions): one index, and most ids of a group are
        new, so most groups read no event row at all. One array parameter per list: a stable
        plan (psycopg prepares repeated statements, and a generic plan for hundreds of IN
        parameters is a bad one) and one round trip."""
        keys = self._all(
            "SELECT event_id, occurred_at_us FROM usage_event_key "
            "WHERE account_id = ? AND event_id = ANY(?)",
            [account_id, event_ids],
        )
        if not keys:
            return {}
        rows = self._all(
            "SELECT event_id, tenant_id, partner_id, kind, quantity, occurred_at_us "
            "FROM usage_event WHERE account_id = ? AND occurred_at_us = ANY(?) "
            "AND event_id = ANY(?)",
            [account_id, [key[1] for key in keys], [key[0] for key in keys]],
        )
        found = {row[0]: (row[1], row[2], row[3], row[4], row[5]) for row in rows}
        stale = [key[0] for key in keys if key[0] not in found]
        if stale:
            # A purged event whose key the purge's sweep has not reached yet: its id is free
            # again, as it was when the row was its own key. Deleted here, in the group's
            # transaction, so that the group's insert of the key can take its place.
            self.connection.exec_driver_sql(
                "DELETE FROM usage_event_key WHERE account_id = %s AND event_id = ANY(%s)",
                (account_id, stale),
            )
        return found

    # -- writes --------------------------------------------------------------------------------

    def insert_events(
        self, rows: list[tuple[Any, ...]], *, received_at_us: int, on_clock: bool = False
    ) -> None:
        """Insert new events, each ``(*UsageEventIn, period, late)``; ``on_clock``: a test
        clock's accounts' (``received_at_us`` is the clock's time).

        No ON CONFLICT on purpose: a concurrent replica's insert of the same key raises
        IntegrityError, the caller retries and sees a duplicate, so nothing counts twice."""
        if not rows:
            return
        if self.postgres:
            self._copy_events(rows, received_at_us, on_clock)
            return
        index = self._ready_index()
        if not on_clock:
            self._mark_hour(index, received_at_us)
        self._many(_INSERT_EVENT, [(*row, received_at_us) for row in rows])
        # AUTOINCREMENT gives each row the largest log id ever plus one: consecutive ids.
        last = int(self._all("SELECT last_insert_rowid()", [])[0][0])
        for log_id, row in enumerate(rows, start=last - len(rows) + 1):
            index.add(row[1], row[0], log_id)

    def _copy_events(
        self, rows: list[tuple[Any, ...]], received_at_us: int, on_clock: bool
    ) -> None:
        """COPY (several times faster than a multi-row INSERT), in the same transaction: the
        dedupe keys first, whose primary key is the exactly-once guarantee, then the events
        into the partition of the month they are received in (storage.partitions)."""
        import psycopg

        from billing_svc.storage.partitions import KEPT, MissingPartition, bucket_of

        bucket = KEPT if on_clock else bucket_of(received_at_us)
        cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]  # a live connection has its driver connection
        statement = _COPY_KEYS
        try:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row((row[1], row[0], row[6], bucket))
            statement = _COPY_EVENTS
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row((*row, received_at_us, bucket))
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityError(statement, None, exc) from exc
        except psycopg.errors.CheckViolation as exc:
            if "no partition" in str(exc):
                raise MissingPartition(bucket) from exc
            raise

    def insert_native(
        self,
        codec: UsageCodec,
        batches: list[Any],
        *,
        received_at_us: int,
        on_clock: bool = False,
    ) -> list[bool]:
        """Insert plain batches decoded by ``codec``, in order, with no Python object per event.

        SQLite: each batch whole under a savepoint; stops at the first batch one of whose keys
        the index may hold (or that holds one twice): the result is one ``True`` per stored
        batch, then ``False`` for that one (nothing of it stored) if there was one. PostgreSQL:
        all the batches in one COPY per table under one savepoint (``_copy_native``): all
        ``True``, or all ``False`` (nothing stored) when one of their keys exists."""
        if self.postgres:
            return self._copy_native(codec, batches, received_at_us, on_clock)
        index = self._ready_index()
        if not on_clock:
            self._mark_hour(index, received_at_us)
        try:
            return codec.insert(
                self._sqlite(),
                _INSERT_EVENT,
                _INSERT_EVENTS,
                batches,
                received_at_us,
                index.kernel_table,
            )
        except sqlite3.Error as exc:  # wrapped as SQLAlchemy wraps its own (db.py maps them)
            raise DBAPIError.instance(_INSERT_EVENTS, None, exc, sqlite3.Error) from exc

    def _copy_native(
        self, codec: UsageCodec, batches: list[Any], received_at_us: int, on_clock: bool
    ) -> list[bool]:
        """The keys, then the events, of plain batches as the kernel wrote them (COPY text data
        from the request's bytes), under a savepoint: a key that exists (a resend, a replica's
        concurrent insert, once that one committed, or two events of the run with one id) undoes
        the run, and the caller's Python path says which events are duplicates or conflicts."""
        import psycopg

        from billing_svc.storage.partitions import KEPT, MissingPartition, bucket_of

        bucket = KEPT if on_clock else bucket_of(received_at_us)
        keys, events = codec.copy_rows(batches, received_at_us, bucket)
        cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]  # a live connection has its driver connection
        cursor.execute("SAVEPOINT native_copy")
        try:
            with cursor.copy(_COPY_KEYS) as copy:
                copy.write(keys)
            with cursor.copy(_COPY_EVENTS) as copy:
                copy.write(events)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT native_copy")
            cursor.execute("RELEASE SAVEPOINT native_copy")
            return [False] * len(batches)
        except psycopg.errors.CheckViolation as exc:
            if "no partition" in str(exc):
                raise MissingPartition(bucket) from exc
            raise
        cursor.execute("RELEASE SAVEPOINT native_copy")
        return [True] * len(batches)

    def add_period_messages(self, account_id: str, period: str, messages: int, late: int) -> int:
        """Add to the period's counters; returns the period's message total after the add."""
        try:
            rows = self._all(
                "INSERT INTO usage_period (account_id, period, messages, late_messages, "
                "late_billed_messages) VALUES (?,?,?,?,0) ON CONFLICT (account_id, period) "
                f"DO UPDATE SET messages = {_add('usage_period', 'messages')}, "
                f"late_messages = {_add('usage_period', 'late_messages')} "
                "RETURNING messages",
                [account_id, period, messages, late],
            )
        except IntegrityError as exc:
            raise CounterFull("usage_period") from exc
        return int(rows[0][0])

    def add_periods_messages(
        self, rows: list[tuple[str, str, int, int]]
    ) -> dict[tuple[str, str], int]:
        """``add_period_messages`` for several ``(account, period, messages, late)`` (distinct
        pairs): the message totals after the adds by (account, period). One statement on
        PostgreSQL, in key order (a fixed lock order)."""
        if not self.postgres:
            return self._add_periods_sqlite(rows)
        if not rows:
            return {}
        try:
            found = self._unnest(
                "INSERT INTO usage_period (account_id, period, messages, late_messages, "
                "late_billed_messages) SELECT *, 0 FROM {unnest} "
                "ON CONFLICT (account_id, period) "
                f"DO UPDATE SET messages = {_add('usage_period', 'messages')}, "
                f"late_messages = {_add('usage_period', 'late_messages')} "
                "RETURNING account_id, period, messages",
                ("text", "text", "bigint", "bigint"),
                rows,
            )
        except IntegrityError as exc:
            raise CounterFull("usage_period") from exc
        return {(row[0], row[1]): int(row[2]) for row in found}

    def _add_periods_sqlite(
        self, rows: list[tuple[str, str, int, int]]
    ) -> dict[tuple[str, str], int]:
        """SQLite: one multi-row upsert per ``_PERIOD_ROWS`` keys, in key order."""
        rows = sorted(rows)
        totals: dict[tuple[str, str], int] = {}
        for start in range(0, len(rows), _PERIOD_ROWS):
            chunk = rows[start : start + _PERIOD_ROWS]
            try:
                found = self._all(
                    "INSERT INTO usage_period (account_id, period, messages, late_messages, "
                    "late_billed_messages) VALUES "
                    + ",".join(["(?,?,?,?,0)"] * len(chunk))
                    + " ON CONFLICT (account_id, period) "
                    f"DO UPDATE SET messages = {_add('usage_period', 'messages')}, "
                    f"late_messages = {_add('usage_period', 'late_messages')} "
                    "RETURNING account_id, period, messages",
                    [value for row in chunk for value in row],
                )
            except IntegrityError as exc:
                raise CounterFull("usage_period") from exc
            # RETURNING's rows come in no promised order: matched by key.
            totals.update(((account_id, period), int(n)) for account_id, period, n in found)
        return totals

    def add_tenant_messages(self, rows: list[tuple[str, str, str, int]]) -> None:
        if self.postgres:
            self._add_unnest(
                "usage_tenant_period",
                "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
                "storage_byte_us) SELECT *, 0 FROM {unnest} "
                "ON CONFLICT (account_id, period, tenant_id) "
                f"DO UPDATE SET messages = {_add('usage_tenant_period', 'messages')}",
                ("text", "text", "text", "bigint"),
                rows,
            )
            return
        self._add_many(
            "usage_tenant_period",
            "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
            "storage_byte_us) VALUES (?,?,?,?,'0') ON CONFLICT (account_id, period, tenant_id) "
            f"DO UPDATE SET messages = {_add('usage_tenant_period', 'messages')}",
            sorted(rows),  # key order: B-tree locality
        )

    def add_partner_messages(self, rows: list[tuple[str, str, str, int]]) -> None:
        statement = (
            "INSERT INTO usage_partner_period (account_id, period, partner_id, messages) "
            "{values} ON CONFLICT (account_id, period, partner_id) "
            f"DO UPDATE SET messages = {_add('usage_partner_period', 'messages')}"
        )
        if self.postgres:
            self._add_unnest(
                "usage_partner_period",
                statement.format(values="SELECT * FROM {unnest}"),
                ("text", "text", "text", "bigint"),
                rows,
            )
            return
        self._add_many(
            "usage_partner_period", statement.format(values="VALUES (?,?,?,?)"), sorted(rows)
        )

    def add_hourly(self, rows: list[tuple[str, int, str, str, int, int, int, int, int]]) -> None:
        """Rows ``(account, hour_us, tenant, partner, kind, messages, storage max, storage last
        at_us, storage last bytes)``; the last reading wins by occurred_at (ties: the newer)."""
        greatest = "GREATEST" if self.postgres else "max"
        statement = (
            "INSERT INTO usage_hourly (account_id, hour_us, tenant_id, partner_id, kind, messages,"
            " storage_bytes_max, storage_last_at_us, storage_bytes_last) "
            "{values} ON CONFLICT (account_id, hour_us, "
            "tenant_id, partner_id, kind) DO UPDATE SET "
            f"messages = {_add('usage_hourly', 'messages')}, "
            f"storage_bytes_max = {greatest}(usage_hourly.storage_bytes_max, "
            "excluded.storage_bytes_max), "
            "storage_bytes_last = CASE WHEN excluded.storage_last_at_us >= "
            "usage_hourly.storage_last_at_us THEN excluded.storage_bytes_last "
            "ELSE usage_hourly.storage_bytes_last END, "
            f"storage_last_at_us = {greatest}(usage_hourly.storage_last_at_us, "
            "excluded.storage_last_at_us)"
        )
        if self.postgres:
            self._add_unnest(
                "usage_hourly",
                statement.format(values="SELECT * FROM {unnest}"),
                (
                    "text",
                    "bigint",
                    "text",
                    "text",
                    "integer",
                    "bigint",
                    "bigint",
                    "bigint",
                    "bigint",
                ),
                rows,
            )
            return
        self._add_many(
            "usage_hourly", statement.format(values="VALUES (?,?,?,?,?,?,?,?,?)"), sorted(rows)
        )

    def mark_reports_due(self, hours: list[tuple[str, int]], now_us: int) -> None:
        """Mark ``(account, hour_us)`` pairs for the hourly report job, in sorted order (a fixed
        lock order). DO UPDATE, not DO NOTHING: on PostgreSQL it waits for a report job that
        holds the row, and inserts it anew once the job deleted it, so a change the job did not
        see is always reported by a later run."""
        statement = (
            "INSERT INTO usage_report_due (account_id, hour_us, marked_at_us) {values} "
            "ON CONFLICT (account_id, hour_us) DO UPDATE SET "
            "marked_at_us = excluded.marked_at_us"
        )
        rows = [(account_id, hour_us, now_us) for account_id, hour_us in sorted(hours)]
        if self.postgres:
            if rows:
                self._unnest(
                    statement.format(values="SELECT * FROM {unnest}"),
                    ("text", "bigint", "bigint"),
                    rows,
                    ordered=False,  # sorted above
                )
            return
        self._many(statement.format(values="VALUES (?,?,?)"), rows)

    def _unnest(
        self,
        statement: str,
        types: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        ordered: bool = True,
    ) -> list[tuple[Any, ...]]:
        """PostgreSQL: ``statement`` over all ``rows`` at once, ``{unnest}`` standing for
        ``unnest`` of one array parameter per column (of ``types``): one statement and one
        round trip instead of one per row, whose rows it takes in key order (``ordered``: they
        are sorted here), so that concurrent writers lock counters in the same order."""
        if ordered:
            rows = sorted(rows)
        arrays = [list(column) for column in zip(*rows, strict=True)]
        unnest = "unnest(" + ", ".join(f"%s::{kind}[]" for kind in types) + ")"
        result = self.connection.exec_driver_sql(statement.format(unnest=unnest), tuple(arrays))
        return [tuple(row) for row in result] if result.returns_rows else []

    def _add_unnest(
        self, table: str, statement: str, types: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """``_add_many`` on PostgreSQL, through ``_unnest`` (rows of distinct keys)."""
        if not rows:
            return
        try:
            self._unnest(statement, types, rows)
        except IntegrityError as exc:
            raise CounterFull(table) from exc

    def _add_many(self, table: str, statement: str, rows: list[tuple[Any, ...]]) -> None:
        """An upsert into counters (``_add``): the only constraint it can meet is the guard's."""
        try:
            self._many(statement, rows)
        except IntegrityError as exc:
            raise CounterFull(table) from exc

    # -- the counters' headroom ----------------------------------------------------------------

    def _in_pairs(self, statement: str, pairs: Iterable[tuple[Any, Any]]) -> list[tuple]:
        """Run ``statement`` (with ``{pairs}`` for a ``VALUES`` list) over ``pairs`` in chunks."""
        pairs = list(pairs)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(pairs), _CHUNK // 2):
            chunk = pairs[start : start + _CHUNK // 2]
            rows.extend(
                self._all(
                    statement.format(pairs=",".join(["(?,?)"] * len(chunk))),
                    [value for pair in chunk for value in pair],
                )
            )
        return rows

    def message_counters(
        self, periods: Iterable[tuple[str, str]], hours: Iterable[tuple[str, int]]
    ) -> dict[tuple[Any, ...], int]:
        """The message counters of the ``(account, period)`` and ``(account, hour_us)`` pairs
        given, keyed ``("period" | "late", account, period)``, ``("tenant" | "partner",
        account, period, id)`` and ``("hourly", account, hour_us, tenant, partner)``."""
        periods = list(periods)
        counters: dict[tuple[Any, ...], int] = {}
        in_periods = "WHERE (account_id, period) IN (VALUES {pairs})"
        for account_id, period, messages, late in self._in_pairs(
            f"SELECT account_id, period, messages, late_messages FROM usage_period {in_periods}",
            periods,
        ):
            counters[("period", account_id, period)] = messages
            counters[("late", account_id, period)] = late
        for kind, table, column in (
            ("tenant", "usage_tenant_period", "tenant_id"),
            ("partner", "usage_partner_period", "partner_id"),
        ):
            for account_id, period, key, messages in self._in_pairs(
                f"SELECT account_id, period, {column}, messages FROM {table} {in_periods}", periods
            ):
                counters[(kind, account_id, period, key)] = messages
        for account_id, hour_us, tenant_id, partner_id, messages in self._in_pairs(
            "SELECT account_id, hour_us, tenant_id, partner_id, messages FROM usage_hourly "
            "WHERE kind = 1 AND (account_id, hour_us) IN (VALUES {pairs})",
            hours,
        ):
            counters[("hourly", account_id, hour_us, tenant_id, partner_id)] = messages
        return counters

    def storage_counters(
        self, account_ids: Iterable[str], hours: Iterable[tuple[str, int]]
    ) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[tuple[str, int, str, str], int]]:
        """Every tenant's latest reading ``(reading_at_us, level_bytes)`` by (account, tenant),
        and the hourly storage maxima of the ``(account, hour_us)`` pairs given by (account,
        hour_us, tenant, partner)."""
        levels = {
            (account_id, tenant_id): (reading_at_us, level_bytes)
            for account_id, tenant_id, level_bytes, reading_at_us in self._in(
                "SELECT account_id, tenant_id, level_bytes, reading_at_us FROM "
                "storage_level WHERE account_id IN ({marks})",
                [],
                account_ids,
            )
        }
        maxima = {
            (account_id, hour_us, tenant_id, partner_id): level
            for account_id, hour_us, tenant_id, partner_id, level in self._in_pairs(
                "SELECT account_id, hour_us, tenant_id, partner_id, storage_bytes_max "
                "FROM usage_hourly WHERE kind = 2 AND (account_id, hour_us) IN "
                "(VALUES {pairs})",
                hours,
            )
        }
        return levels, maxima

    # -- storage gauges ------------------------------------------------------------------------

    def storage_levels(
        self, account_id: str, tenant_ids: Iterable[str]
    ) -> dict[str, tuple[int, int]]:
        """``tenant -> (level_bytes, reading_at_us)`` of the latest reading."""
        rows = self._in(
            "SELECT tenant_id, level_bytes, reading_at_us FROM storage_level "
            "WHERE account_id = ? AND tenant_id IN ({marks})",
            [account_id],
            tenant_ids,
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}

    def set_storage_levels(self, rows: list[tuple[str, str, int, int]]) -> None:
        self._many(
            "INSERT INTO storage_level (account_id, tenant_id, level_bytes, reading_at_us) "
            "VALUES (?,?,?,?) ON CONFLICT (account_id, tenant_id) DO UPDATE SET "
            "level_bytes = excluded.level_bytes, reading_at_us = excluded.reading_at_us",
            rows,
        )

    def add_byte_us(self, rows: list[tuple[str, str, str, Decimal]]) -> None:
        """Add byte-microseconds to tenants' periods (``(account, period, tenant, byte_us)``)."""
        if self.postgres:
            update = "usage_tenant_period.storage_byte_us + excluded.storage_byte_us"
            params: list[tuple[str, str, str, Decimal | str]] = [
                (a, p, t, v) for a, p, t, v in rows
            ]
        else:  # exact text arithmetic is not SQLite's: read, add in Python, write back
            current = {}
            for a, p, t, _ in rows:
                found = self._all(
                    "SELECT storage_byte_us FROM usage_tenant_period WHERE "
                    "account_id = ? AND period = ? AND tenant_id = ?",
                    [a, p, t],
                )
                current[(a, p, t)] = Decimal(found[0][0]) if found else Decimal(0)
            update = "excluded.storage_byte_us"
            params = [(a, p, t, str(current[(a, p, t)] + v)) for a, p, t, v in rows]
        self._many(
            "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
            "storage_byte_us) VALUES (?,?,?,0,?) ON CONFLICT (account_id, period, tenant_id) "
            f"DO UPDATE SET storage_byte_us = {update}",
            params,
        )

    def set_byte_us(self, rows: list[tuple[str, str, str, Decimal]]) -> None:
        self._many(
            "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
            "storage_byte_us) VALUES (?,?,?,0,?) ON CONFLICT (account_id, period, tenant_id) "
            "DO UPDATE SET storage_byte_us = excluded.storage_byte_us",
            [(a, p, t, v if self.postgres else str(v)) for a, p, t, v in rows],
        )

    def storage_readings(
        self, account_id: str, tenant_id: str, from_us: int
    ) -> list[tuple[int, int]]:
        """The tenant's readings ``(occurred_at_us, bytes)`` from ``from_us`` on, preceded by
        the last one before it (the level in force at ``from_us``)."""
        before = self._all(
            "SELECT occurred_at_us, quantity FROM usage_event WHERE account_id = ? AND "
            "tenant_id = ? AND kind = 2 AND occurred_at_us < ? "
            "ORDER BY occurred_at_us DESC, event_id DESC LIMIT 1",
            [account_id, tenant_id, from_us],
        )
        after = self._all(
            "SELECT occurred_at_us, quantity FROM usage_event WHERE account_id = ? AND "
            "tenant_id = ? AND kind = 2 AND occurred_at_us >= ? ORDER BY occurred_at_us, event_id",
            [account_id, tenant_id, from_us],
        )
        return [(int(t), int(q)) for t, q in before + after]

    def total_storage_level(self, account_id: str) -> int:
        rows = self._all(
            "SELECT COALESCE(SUM(level_bytes), 0) FROM storage_level WHERE account_id = ?",
            [account_id],
        )
        return int(rows[0][0])
