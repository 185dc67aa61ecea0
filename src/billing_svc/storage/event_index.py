"""SQLite's exactly-once index of raw usage events, in the writer's process.

On SQLite ``usage_event`` is an append-only log (migration ``0017_usage_layout``): a row per
event, ``log_id INTEGER PRIMARY KEY AUTOINCREMENT``, and no index on (account_id, event_id),
because a random event id in a B-tree costs a dirty page per event (docs/decisions.md, "Random
event ids on SQLite"). Which (account, event id) pairs are stored is known from this index, one
per ``Database`` per process: derived data, rebuilt from the log at start, the log the truth.

The index maps a keyed 64-bit hash of (account id, event id) to log ids. It is a candidate
filter, never a verdict: ``probe`` returns every log id whose entry has the key's hash, and the
caller reads those rows and compares the key itself (``UsageStore.existing_events``), so a
collision costs a row read, never an event. The kernel (``native``'s ``Index``: SipHash-2-4 under
a random key drawn per process, an open-addressing table) is used whenever it is built, by both
ingestion paths; without it, ``PythonTable`` (Python's own hash of the key with a random salt,
in dicts) has the same interface.

The transaction rules (``Database.write`` drives them):

- ``begin``: a write transaction starts; entries left pending by a transaction whose end was not
  seen are dropped.
- ``ready``, before the first probe of a transaction (SQLite's write lock is held from its
  ``BEGIN IMMEDIATE``): rows other processes or connections committed since ``last_seen`` are
  read from the log and added; nobody else can commit while the lock is held, so the index is
  complete for the rest of the transaction.
- entries of the rows the transaction inserts are pending: probed, joined to the index by
  ``committed`` once the COMMIT returned, dropped by ``rolled_back``. A commit that failed after
  all is harmless: ``last_seen`` did not move, so the next ``ready`` reads those rows if they
  are there.
- a purge's deleted rows leave entries behind; a probe that finds no row treats them as absent.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Protocol

from billing_svc import native

# Where a Database's write connections carry its index (storage.db sets it, storage.usage reads).
USAGE_INDEX_KEY = "billing_usage_index"
# Tests only: a narrow hash (e.g. 8 bits) makes collisions the rule, which must change nothing.
HASH_BITS_VARIABLE = "BILLING_TEST_DEDUPE_HASH_BITS"
_CATCH_UP_SQL = (
    "SELECT log_id, account_id, event_id FROM usage_event WHERE log_id > ? ORDER BY log_id"
)


class Table(Protocol):
    """What ``native``'s ``Index`` and ``PythonTable`` both are."""

    @property
    def last_seen(self) -> int: ...

    @property
    def pending(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    def __len__(self) -> int: ...

    def hash(self, account_id: str, event_id: str, /) -> int: ...

    def probe(self, account_id: str, event_id: str, /) -> list[int]: ...

    def add(self, account_id: str, event_id: str, log_id: int, /) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def catch_up(self, connection: sqlite3.Connection, /) -> int: ...


class PythonTable:
    """The index without the kernel: hash -> log id (a list when hashes collide), in dicts."""

    def __init__(self, bits: int = 64) -> None:
        self._salt = os.urandom(16)
        self._mask = (1 << bits) - 1
        self._committed: dict[int, int | list[int]] = {}
        self._pending: dict[int, list[int]] = {}
        self._pending_last = 0
        self.last_seen = 0

    @property
    def pending(self) -> int:
        return sum(len(ids) for ids in self._pending.values())

    @property
    def bytes(self) -> int:
        return 0  # not measured: the kernel's is the one the service runs with

    def __len__(self) -> int:
        return sum(1 if isinstance(ids, int) else len(ids) for ids in self._committed.values())

    def hash(self, account_id: str, event_id: str) -> int:
        return hash((self._salt, account_id, event_id)) & self._mask

    def probe(self, account_id: str, event_id: str) -> list[int]:
        key = self.hash(account_id, event_id)
        stored = self._committed.get(key)
        found = [] if stored is None else [stored] if isinstance(stored, int) else list(stored)
        return found + self._pending.get(key, [])

    def add(self, account_id: str, event_id: str, log_id: int) -> None:
        self._pending.setdefault(self.hash(account_id, event_id), []).append(log_id)
        self._pending_last = max(self._pending_last, log_id)

    def _put(self, key: int, log_id: int) -> None:
        stored = self._committed.get(key)
        if stored is None:
            self._committed[key] = log_id
        elif isinstance(stored, int):
            self._committed[key] = [stored, log_id]
        else:
            stored.append(log_id)

    def commit(self) -> None:
        for key, ids in self._pending.items():
            for log_id in ids:
                self._put(key, log_id)
        self.last_seen = max(self.last_seen, self._pending_last)
        self.rollback()

    def rollback(self) -> None:
        self._pending = {}
        self._pending_last = 0

    def catch_up(self, connection: sqlite3.Connection) -> int:
        if self._pending:
            raise RuntimeError("catch_up() with pending entries: it runs first")
        added = 0
        for log_id, account_id, event_id in connection.execute(_CATCH_UP_SQL, (self.last_seen,)):
            self._put(self.hash(account_id, event_id), log_id)
            self.last_seen = log_id
            added += 1
        return added


def new_table() -> Table:
    """The kernel's index when it is built, else ``PythonTable``; the hash as wide as the tests
    allow (64 bits unless ``BILLING_TEST_DEDUPE_HASH_BITS`` says fewer)."""
    bits = int(os.environ.get(HASH_BITS_VARIABLE) or 64)
    kernel, _ = native.load()
    if kernel is not None:
        table: Table = kernel.Index(os.urandom(16), bits)
        return table
    return PythonTable(bits)


class EventIndex:
    """The index of one ``Database`` in this process, and its transaction rules (above)."""

    def __init__(self) -> None:
        self.table: Table = new_table()
        self._ready = False
        # The wall-clock hour whose usage_log_mark this process last wrote (UsageStore).
        self.marked_hour_us: int | None = None

    @property
    def kernel_table(self) -> Any:
        """The kernel's ``Index`` (what its ``insert`` probes and fills), or None."""
        return None if isinstance(self.table, PythonTable) else self.table

    def begin(self) -> None:
        self.table.rollback()
        self._ready = False

    def ready(self, connection: sqlite3.Connection) -> None:
        """Bring the index up to date with the log, once per write transaction."""
        if not self._ready:
            self.table.rollback()
            self.table.catch_up(connection)
            self._ready = True

    def warm(self, connection: sqlite3.Connection) -> int:
        """Read the log outside a write transaction (at start, before traffic): the first write
        then reads only what came after. Returns the entries added."""
        self.table.rollback()
        return self.table.catch_up(connection)

    def probe(self, account_id: str, event_id: str) -> list[int]:
        return self.table.probe(account_id, event_id)

    def add(self, account_id: str, event_id: str, log_id: int) -> None:
        self.table.add(account_id, event_id, log_id)

    def committed(self) -> None:
        self._ready = False
        try:
            self.table.commit()
        except MemoryError:
            # Entries may be missing: start again from the log (the next ready() reads it all).
            # Not raised: the transaction did commit, and its acks are due.
            self.table = new_table()

    def rolled_back(self) -> None:
        self._ready = False
        self.marked_hour_us = None  # the mark may have gone with the transaction
        self.table.rollback()


# SQLite's log layout (0017_usage_layout) beyond the SQLModel table, which keeps describing the
# event's columns and, for PostgreSQL, its key.
_LOG_TABLES = {"usage_log_mark"}
_LOG_INDEXES = {"ix_usage_event_storage"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's filter (the comparison of the tables with the migrations, and autogenerate):
    PostgreSQL's partitioning objects (storage.partitions) and SQLite's log layout are the
    migrations' own, not SQLModel tables."""
    if type_ == "table" and name in _LOG_TABLES:
        return False
    if type_ == "column" and name == "log_id" and obj.table.name == "usage_event":
        return False
    if type_ == "index" and name in _LOG_INDEXES:
        return False
    from billing_svc.storage import partitions  # it imports storage.db, which imports this

    return partitions.include_object(obj, name, type_, reflected, compare_to)
