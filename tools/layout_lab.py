"""Storage layouts for random (UUIDv4) event ids on SQLite, measured with bare sqlite3 (issue 16,
point 2). A lab, not a benchmark of the service: it does not run in the tests or in ./dev bench.

    python3 -m tools.layout_lab --stored 1000000 [--insert 300000] [--layouts floor,narrow,...]

Each layout gets a store pre-filled with ``--stored`` events of 1,000 accounts (bulk-loaded in
key order, synchronous=OFF, untimed), then the next ``--insert`` events with fresh UUIDv4 ids are
inserted with ``synchronous=FULL`` in WAL mode (SQLite's default autocheckpoint), ``--commit``
rows per transaction, and timed: only that part. "floor" is the bare floor of the issue: today's
``usage_event`` (WITHOUT ROWID keyed (account_id, event_id)), 1,000 rows per commit. Every
layout detects a repeated key in the same transaction as its insert, as the service must.

Layouts (--layouts, comma-separated; a suffix ``@N`` sets rows per commit, e.g. ``narrow@20000``):

    floor        today's table.
    narrow       (a) dedupe key (account number, 64-bit hash of (account, event id), log id),
                 WITHOUT ROWID, beside an append-only rowid event log holding the whole row.
    narrow_acct  narrow, with the log indexed by (account_id, log id): what the raw-event reads
                 (reconciliation, storage readings, the purge) need once the key is a hash.
    narrow_1k    narrow in a database of 1 KiB pages (a dirty page costs a quarter as much).
    narrow_mmap  narrow with a 1 GiB page cache and mmap (reads never leave the process).
    lsm          (b) two levels: inserts go to a hot key table; once it holds --hot keys it is
                 merged into the cold one in key order, --chunk keys per transaction (timed
                 too); a probe looks in both (one joined query per commit).
    gen          (c) keys clustered by receive time: (generation, account, hash), a generation
                 every --generation events; a probe looks in every generation (one seek each).
    memidx       (d) the log alone in SQLite; the dedupe index in the process (sorted numpy
                 arrays of 64-bit hashes and log ids plus a dict for new keys, merged every
                 --hot keys), rebuilt from the log's hash column at start (rebuild timed).

Results (this 2-core machine, shared with ~7 engineers: always compare rows of the same run;
load averages are printed with each run) are recorded in docs/decisions.md, "Random event ids on
SQLite". In short (2026-12-02, rows/s, × the floor of the same run):

    1M stored, load 3-4:  floor 10,693; memidx 85,588 (8.0x); narrow@20000 54,976 (5.1x);
                          floor@20000 19,783 (1.9x)
    4M stored, load 2-4:  floor 20,771; memidx 94,249 (4.5x); narrow@20000 43,305 (2.1x)
    1M stored, load 4-18: narrow 1.8x, narrow_acct 0.7x, narrow_1k 1.3x, narrow_mmap 1.05x,
                          lsm 2.3x, gen 1.5x, memidx 5.5x
    10M stored, load 11-33: memidx 1.7x, narrow@20000 2.3x, gen 0.9x (11 generations)
    10M stored, load 5-10: floor 13,572; memidx 57,054 (4.2x, rebuild 14.6s);
                           narrow@20000 22,516 (1.7x)

memidx keeps its rate as the store grows (1.10x from 1M to 4M); narrow loses a fifth already
(0.79x), and gen pays a seek per generation.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

ACCOUNTS = 1000
TENANTS_PER_ACCOUNT = 10
PARTNERS_PER_ACCOUNT = 20
_T0_US = 1_764_000_000_000_000

_FULL_COLUMNS = (
    "event_id TEXT, account_id TEXT, tenant_id TEXT, partner_id TEXT, kind INT, "
    "quantity INT, occurred_at_us INT, period TEXT, late INT, received_at_us INT"
)
_FLOOR_TABLE = (
    f"CREATE TABLE usage_event ({_FULL_COLUMNS}, PRIMARY KEY (account_id, event_id)) WITHOUT ROWID"
)
_LOG_TABLE = f"CREATE TABLE usage_log (log_id INTEGER PRIMARY KEY, key_hash INT, {_FULL_COLUMNS})"
_KEY_COLUMNS = "account_no INT, id_hash INT, log_id INT"


def _account(n: int) -> str:
    return f"acc_{n:026d}"  # as long as the service's ULID-based ids


def _uuid4s(count: int) -> list[str]:
    raw = os.urandom(16 * count)
    ids = []
    for i in range(count):
        h = raw[16 * i : 16 * i + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
    return ids


def key_hash(account_id: str, event_id: str) -> int:
    """64-bit hash of the dedupe key, as a signed SQLite INTEGER."""
    digest = hashlib.blake2b(f"{account_id}\0{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


@dataclass
class Event:
    account_no: int
    event_id: str
    hash: int

    def row(self, received_at_us: int) -> tuple[Any, ...]:
        account_no = self.account_no
        return (
            self.event_id,
            _account(account_no),
            f"ten_{account_no:022d}_{account_no % 10:03d}",
            f"prt_{account_no:022d}_{account_no % 20:03d}",
            1,
            1,
            received_at_us,
            "2026-12",
            0,
            received_at_us,
        )


def _new_events(count: int) -> list[Event]:
    """What is timed: fresh UUIDv4 ids over the accounts in arrival (random) order."""
    raw = os.urandom(2 * count)
    accounts = [int.from_bytes(raw[2 * i : 2 * i + 2], "little") % ACCOUNTS for i in range(count)]
    ids = _uuid4s(count)
    return [Event(a, e, key_hash(_account(a), e)) for a, e in zip(accounts, ids, strict=True)]


def _connect(path: str, *, page_size: int = 4096) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA page_size={page_size}")
    return connection


def _bulk(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-262144")


def _durable(connection: sqlite3.Connection, *, cache_kib: int = 2000, mmap: int = 0) -> None:
    """The service's settings for a write connection (storage/db.py)."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA temp_store=MEMORY")
    connection.execute(f"PRAGMA cache_size=-{cache_kib}")
    connection.execute(f"PRAGMA mmap_size={mmap}")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _probe(connection: sqlite3.Connection, on: str, keys: list[tuple[int, int]]) -> int:
    """How many of ``keys`` (account number, hash) ``usage_key`` holds: one query per 1,000,
    each key a seek (the probe drives the join)."""
    found = 0
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        values = ",".join("(?,?)" for _ in chunk)
        found += connection.execute(
            f"SELECT count(*) FROM (VALUES {values}) AS probe CROSS JOIN usage_key ON {on}",
            [v for key in chunk for v in key],
        ).fetchone()[0]
    return found


def _numbers(count: int) -> str:
    """Rows 1..count, as a CTE (this SQLite has no generate_series)."""
    return f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count})"


_POSITIVE = "(random() & 9223372036854775807)"


def _prefill_events(group: int) -> str:
    """The stored events of the pre-fill, made in SQL (C speed: 10M rows in Python take minutes)
    and already in key order, so that nothing sorts them: row x (its log id, arrival order) is
    in group x / ``group`` (a generation; one group for the other layouts), of account
    (x % group) / (group / 1000), and its key is the i-th (i = x % (group / 1000)) of that
    account's keys in the group: i's slice of the key space plus a random offset in it. So
    event ids and hashes are spread evenly over the key space, as random ones are, and
    increase with x within an account."""
    per = max(1, group // ACCOUNTS)
    step_hash, step_prefix = 9223372036854775807 // per * 2, 2**48 // per
    return (
        "SELECT x AS log_id, "
        f"(i - {per // 2}) * {step_hash} + {_POSITIVE} % {step_hash} AS key_hash, "
        "substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(r, 1, 3) || '-a' || "
        "substr(r, 4, 3) || '-' || substr(r, 7, 12) AS event_id, "
        "printf('acc_%026d', a) AS account_id, printf('ten_%022d_%03d', a, x % 10) AS tenant_id, "
        "printf('prt_%022d_%03d', a, x % 20) AS partner_id, "
        f"1 AS kind, 1 AS quantity, {_T0_US} AS occurred_at_us, '2026-12' AS period, 0 AS late, "
        f"{_T0_US} AS received_at_us, a AS account_no "
        f"FROM (SELECT x, a, i, printf('%012x', i * {step_prefix} + {_POSITIVE} % {step_prefix})"
        " AS h, lower(hex(randomblob(9))) AS r "
        f"FROM (SELECT x, (x % {group}) / {per} AS a, x % {per} AS i FROM n))"
    )


_LOG_FIELDS = (
    "log_id, key_hash, event_id, account_id, tenant_id, partner_id, kind, quantity, "
    "occurred_at_us, period, late, received_at_us"
)


class Layout:
    """One layout: how to pre-fill it and how to insert a commit's worth of new events."""

    name = ""
    page_size = 4096
    cache_kib = 2000
    mmap = 0

    def __init__(self, connection: sqlite3.Connection, stored: int) -> None:
        self.connection = connection
        self.stored = stored
        self.next_log_id = 1

    def create(self) -> None:
        raise NotImplementedError

    def prefill(self) -> None:
        raise NotImplementedError

    def insert(self, events: list[Event], received_at_us: int) -> None:
        """Insert a commit's events inside the open transaction; a repeated key must fail."""
        raise NotImplementedError

    def after_commit(self) -> float:
        """Background work the layout owes after a commit (merges); seconds it took."""
        return 0.0

    def _log_rows(self, events: list[Event], received_at_us: int) -> list[tuple[Any, ...]]:
        rows = []
        for e in events:
            rows.append((self.next_log_id, e.hash, *e.row(received_at_us)))
            self.next_log_id += 1
        return rows

    def _prefill_log(self, group: int = 0) -> None:
        """The log of the stored events, appended in log id (arrival) order."""
        self.connection.execute(
            f"{_numbers(self.stored)} INSERT INTO usage_log ({_LOG_FIELDS}) "
            f"SELECT {_LOG_FIELDS} FROM "
            f"({_prefill_events(group or self.stored + 1)})"
        )
        self.next_log_id = self.stored + 1

    def _insert_log(self, rows: list[tuple[Any, ...]]) -> None:
        self.connection.executemany("INSERT INTO usage_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)


class Floor(Layout):
    name = "floor"

    def create(self) -> None:
        self.connection.execute(_FLOOR_TABLE)

    def prefill(self) -> None:
        self.connection.execute(
            f"{_numbers(self.stored)} INSERT INTO usage_event SELECT event_id, account_id, "
            "tenant_id, partner_id, kind, quantity, occurred_at_us, period, late, received_at_us "
            f"FROM ({_prefill_events(self.stored + 1)})"
        )

    def insert(self, events: list[Event], received_at_us: int) -> None:
        self.connection.executemany(
            "INSERT INTO usage_event VALUES (?,?,?,?,?,?,?,?,?,?)",
            [e.row(received_at_us) for e in events],
        )


class Narrow(Layout):
    name = "narrow"
    key_table = "usage_key"

    def create(self) -> None:
        self.connection.execute(_LOG_TABLE)
        self.connection.execute(
            f"CREATE TABLE {self.key_table} ({_KEY_COLUMNS}, "
            "PRIMARY KEY (account_no, id_hash)) WITHOUT ROWID"
        )

    def prefill(self) -> None:
        self._prefill_log()
        self.connection.execute(
            f"INSERT INTO {self.key_table} SELECT (log_id % {self.stored + 1}) / "
            f"{max(1, (self.stored + 1) // ACCOUNTS)}, key_hash, log_id FROM usage_log"
        )

    def insert(self, events: list[Event], received_at_us: int) -> None:
        rows = self._log_rows(events, received_at_us)
        # In key order: the B-tree cursor moves forward (fewer comparisons), same pages.
        keys = sorted((e.account_no, e.hash, row[0]) for e, row in zip(events, rows, strict=True))
        self.connection.executemany(f"INSERT INTO {self.key_table} VALUES (?,?,?)", keys)
        self._insert_log(rows)


class NarrowAccountIndex(Narrow):
    name = "narrow_acct"

    def prefill(self) -> None:
        super().prefill()
        self.connection.execute("CREATE INDEX usage_log_account ON usage_log (account_id, log_id)")


class Narrow1K(Narrow):
    name = "narrow_1k"
    page_size = 1024


class NarrowMmap(Narrow):
    name = "narrow_mmap"
    cache_kib = 1024 * 1024
    mmap = 1 << 30


class Lsm(Narrow):
    """Hot keys in ``usage_key_hot``, the rest in ``usage_key`` (the cold level)."""

    name = "lsm"
    hot_limit = 100_000
    chunk = 20_000

    def create(self) -> None:
        super().create()
        self.connection.execute(
            f"CREATE TABLE usage_key_hot ({_KEY_COLUMNS}, "
            "PRIMARY KEY (account_no, id_hash)) WITHOUT ROWID"
        )
        self.hot = 0

    def insert(self, events: list[Event], received_at_us: int) -> None:
        rows = self._log_rows(events, received_at_us)
        keys = sorted((e.account_no, e.hash, row[0]) for e, row in zip(events, rows, strict=True))
        found = _probe(
            self.connection,
            "usage_key.account_no = probe.column1 AND usage_key.id_hash = probe.column2",
            [key[:2] for key in keys],
        )
        if found:
            raise sqlite3.IntegrityError("a key exists in the cold level")
        self.connection.executemany("INSERT INTO usage_key_hot VALUES (?,?,?)", keys)
        self._insert_log(rows)
        self.hot += len(keys)

    def after_commit(self) -> float:
        if self.hot < self.hot_limit:
            return 0.0
        started = time.perf_counter()
        while True:  # one short transaction per chunk, in key order
            self.connection.execute("BEGIN IMMEDIATE")
            last = self.connection.execute(
                "SELECT account_no, id_hash FROM usage_key_hot ORDER BY account_no, id_hash "
                "LIMIT 1 OFFSET ?",
                [self.chunk - 1],
            ).fetchone()
            bound = "" if last is None else "WHERE (account_no, id_hash) <= (?, ?)"
            params = [] if last is None else list(last)
            self.connection.execute(
                f"INSERT INTO usage_key SELECT * FROM usage_key_hot {bound} "
                "ORDER BY account_no, id_hash",
                params,
            )
            self.connection.execute(f"DELETE FROM usage_key_hot {bound}", params)
            self.connection.execute("COMMIT")
            if last is None:
                break
        self.hot = 0
        return time.perf_counter() - started


class Generations(Layout):
    """Keys ``(generation, account, hash)``: only today's generation takes inserts."""

    name = "gen"
    generation_size = 1_000_000

    def create(self) -> None:
        self.connection.execute(_LOG_TABLE)
        self.connection.execute(
            f"CREATE TABLE usage_key (generation INT, {_KEY_COLUMNS}, "
            "PRIMARY KEY (generation, account_no, id_hash)) WITHOUT ROWID"
        )

    def _generation(self, log_id: int) -> int:
        return log_id // self.generation_size

    def prefill(self) -> None:
        # Arrival order is log id order: every generation holds every account's events.
        self._prefill_log(self.generation_size)
        per = max(1, self.generation_size // ACCOUNTS)
        self.connection.execute(
            f"INSERT INTO usage_key SELECT log_id / {self.generation_size}, "
            f"(log_id % {self.generation_size}) / {per}, key_hash, log_id FROM usage_log"
        )

    def insert(self, events: list[Event], received_at_us: int) -> None:
        rows = self._log_rows(events, received_at_us)
        current = self._generation(rows[-1][0])
        keys = sorted(
            (self._generation(row[0]), e.account_no, e.hash, row[0])
            for e, row in zip(events, rows, strict=True)
        )
        generations = ",".join(str(g) for g in range(current + 1))
        found = _probe(
            self.connection,
            f"usage_key.generation IN ({generations}) AND "
            "usage_key.account_no = probe.column1 AND usage_key.id_hash = probe.column2",
            [key[1:3] for key in keys],
        )
        if found:
            raise sqlite3.IntegrityError("a key exists in an older generation")
        self.connection.executemany("INSERT INTO usage_key VALUES (?,?,?,?)", keys)
        self._insert_log(rows)


class MemoryIndex(Layout):
    """The log in SQLite; the dedupe index in this process, rebuilt from the log."""

    name = "memidx"
    hot_limit = 1_000_000

    def create(self) -> None:
        self.connection.execute(_LOG_TABLE)

    def prefill(self) -> None:
        self._prefill_log()
        self.rebuild_seconds = self.rebuild()

    def rebuild(self) -> float:
        """Read every (log id, hash) of the log: what a start costs."""
        import numpy as np

        started = time.perf_counter()
        ids, hashes = [], []
        cursor = self.connection.execute("SELECT log_id, key_hash FROM usage_log")
        while batch := cursor.fetchmany(100_000):
            ids.append(np.array([row[0] for row in batch], dtype=np.int64))
            hashes.append(np.array([row[1] for row in batch], dtype=np.int64))
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.int64)
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        order = np.argsort(all_hashes, kind="stable")
        self.cold_hashes, self.cold_ids = all_hashes[order], all_ids[order]
        self.hot: dict[int, int] = {}
        self.pending: dict[int, int] = {}
        return time.perf_counter() - started

    def index_bytes(self) -> int:
        """The sorted arrays (16 bytes a key; the hot dict is merged into them)."""
        return int(self.cold_hashes.nbytes + self.cold_ids.nbytes)

    def insert(self, events: list[Event], received_at_us: int) -> None:
        import numpy as np

        rows = self._log_rows(events, received_at_us)
        probe = np.array([row[1] for row in rows], dtype=np.int64)
        at = np.searchsorted(self.cold_hashes, probe)
        at[at >= len(self.cold_hashes)] = 0
        if len(self.cold_hashes) and bool(np.any(self.cold_hashes[at] == probe)):
            raise sqlite3.IntegrityError("a hash is in the index: confirm against the log")
        for row in rows:  # the transaction's keys, kept apart until it commits
            if row[1] in self.hot or row[1] in self.pending:
                raise sqlite3.IntegrityError("a hash is in the index: confirm against the log")
            self.pending[row[1]] = row[0]
        self._insert_log(rows)

    def after_commit(self) -> float:
        import numpy as np

        self.hot.update(self.pending)
        self.pending.clear()
        if len(self.hot) < self.hot_limit:
            return 0.0
        started = time.perf_counter()
        hashes = np.fromiter(self.hot.keys(), dtype=np.int64, count=len(self.hot))
        ids = np.fromiter(self.hot.values(), dtype=np.int64, count=len(self.hot))
        order = np.argsort(hashes)
        hashes, ids = hashes[order], ids[order]
        at = np.searchsorted(self.cold_hashes, hashes)  # one pass over the sorted arrays
        self.cold_hashes = np.insert(self.cold_hashes, at, hashes)
        self.cold_ids = np.insert(self.cold_ids, at, ids)
        self.hot.clear()
        return time.perf_counter() - started


LAYOUTS: dict[str, type[Layout]] = {
    cls.name: cls
    for cls in (
        Floor,
        Narrow,
        NarrowAccountIndex,
        Narrow1K,
        NarrowMmap,
        Lsm,
        Generations,
        MemoryIndex,
    )
}


def _file_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


def measure(
    spec: str,
    stored: int,
    inserts: int,
    default_commit: int,
    folder: str,
    options: argparse.Namespace,
) -> dict[str, Any]:
    name, _, commit_text = spec.partition("@")
    commit = int(commit_text) if commit_text else default_commit
    path = os.path.join(folder, f"{name}-{stored}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    cls = LAYOUTS[name]
    connection = _connect(path, page_size=cls.page_size)
    layout = cls(connection, stored)
    if isinstance(layout, Lsm):
        layout.hot_limit, layout.chunk = options.hot, options.chunk
    if isinstance(layout, Generations):
        layout.generation_size = options.generation
    if isinstance(layout, MemoryIndex):
        layout.hot_limit = options.hot
    _bulk(connection)
    started = time.perf_counter()
    layout.create()
    layout.prefill()
    prefill_seconds = time.perf_counter() - started
    _durable(connection, cache_kib=layout.cache_kib, mmap=layout.mmap)
    stored_bytes = _file_bytes(path)
    events = _new_events(inserts)
    load = os.getloadavg()[0]
    background = 0.0
    started = time.perf_counter()
    for start in range(0, inserts, commit):
        connection.execute("BEGIN IMMEDIATE")
        layout.insert(events[start : start + commit], _T0_US + start)
        connection.execute("COMMIT")
        background += layout.after_commit()
    seconds = time.perf_counter() - started
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    result = {
        "layout": spec,
        "stored": stored,
        "inserted": inserts,
        "rows_per_commit": commit,
        "rows_per_s": inserts / seconds,
        "seconds": seconds,
        "merge_seconds": background,
        "load_1min": load,
        "prefill_s": prefill_seconds,
        "bytes_per_event": _file_bytes(path) / (stored + inserts),
        "stored_bytes": stored_bytes,
        "rebuild_s": getattr(layout, "rebuild_seconds", None),
        "index_bytes_per_event": (getattr(layout, "index_bytes", lambda: 0)() / (stored + inserts)),
    }
    connection.close()
    if not options.keep:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--insert", type=int, default=300_000)
    parser.add_argument("--commit", type=int, default=1000)
    parser.add_argument("--layouts", default="floor,narrow,lsm,gen,memidx")
    parser.add_argument("--hot", type=int, default=100_000, help="lsm: keys in the hot level")
    parser.add_argument("--chunk", type=int, default=20_000, help="lsm: keys per merge commit")
    parser.add_argument(
        "--generation", type=int, default=1_000_000, help="gen: events per generation"
    )
    parser.add_argument("--dir", default="/tmp/layout_lab")
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    os.makedirs(options.dir, exist_ok=True)
    floor_rate = None
    for spec in options.layouts.split(","):
        result = measure(spec, options.stored, options.insert, options.commit, options.dir, options)
        if spec == "floor":
            floor_rate = result["rows_per_s"]
        ratio = f"{result['rows_per_s'] / floor_rate:5.2f}x floor" if floor_rate else ""
        extra = (
            f"; rebuild {result['rebuild_s']:.1f}s, index "
            f"{result['index_bytes_per_event']:.0f} B/event in memory"
            if result["rebuild_s"] is not None
            else ""
        )
        print(
            f"{spec:18} stored {options.stored:>11,} commit {result['rows_per_commit']:>6,}: "
            f"{result['rows_per_s']:>9,.0f} rows/s {ratio} (merges {result['merge_seconds']:.1f}s"
            f" of {result['seconds']:.1f}s; load {result['load_1min']:.1f}; "
            f"{result['bytes_per_event']:.0f} B/event; prefill {result['prefill_s']:.0f}s"
            f"{extra})",
            flush=True,
        )


if __name__ == "__main__":
    main()
