"""Ingestion at production scale (issue 16, point 1): random ids, many accounts, a full store.

For each id kind (UUIDv4, UUIDv7, sequential as the best case) and each point of the curve
(events already stored: 0 → 1M → 10M → 50M on SQLite, 0 → 10M on PostgreSQL when
BILLING_TEST_DATABASE_URL is set), in the same run:

- the store: a migrated database with 1,000 accounts of 10 tenants and 20 partners each, made
  once through the API, copied per point and pre-filled with that many events spread evenly over
  the accounts (``benchmarks.prefill``: in key order, with matching counters);
- the bare floor: a table of its own, keyed (account, event id), holding the store's rows
  (SQLite: WITHOUT ROWID, in a file of its own; ``synchronous=FULL``, WAL, 1,000
  rows per commit; PostgreSQL: a copy of the table in the same database, bare psycopg
  ``executemany … ON CONFLICT DO NOTHING``, 1,000 rows per transaction) taking exactly the keys
  the producer sends;
- billing-svc: ``billing-svc serve`` with its deployed settings, fed by the producer process
  (``benchmarks.producer``: 4 streams, batches of 1,000 events over 10 accounts each).

The machine may be shared: the load average is written beside each point; the floor and the
service are measured one after the other, so their ratio holds better than either figure.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from as2aas.billing.v1 import usage_service_pb2 as upb

from benchmarks.ids import KINDS, BenchAccount, StreamPlan
from benchmarks.ingestion import _DEPLOYED, _cpu_seconds, _kernel_was_active
from benchmarks.machine import describe
from benchmarks.prefill import STORED_EVENTS_SQL, create_accounts, prefill_usage
from benchmarks.report import write_section
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import to_us
from billing_svc.storage.usage import _EVENT_COLUMNS
from tests.support import PG_URL_ENV, TOKENS, Client, ServiceProcess, auth

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS, TENANTS, PARTNERS = 1000, 10, 20
SQLITE_POINTS = (0, 1_000_000, 10_000_000, 50_000_000)
POSTGRES_POINTS = (0, 10_000_000)
QUICK_POINTS = (0, 100_000, 1_000_000)
STREAMS, SEED = 4, 16
LABELS = {"uuid4": "UUIDv4", "uuid7": "UUIDv7", "sequential": "sequential (best case)"}


def floor_rows(
    plan: StreamPlan, accounts: list[BenchAccount], at_us: int, period: str
) -> list[list[tuple[Any, ...]]]:
    """The producer's events as table rows (``_EVENT_COLUMNS``), one list per batch, in the
    order the streams' batches arrive together (round robin)."""
    streams = [plan.batches(s, accounts) for s in range(plan.streams)]
    batches: list[list[tuple[Any, ...]]] = []
    while streams:
        for stream in list(streams):
            batch = next(stream, None)
            if batch is None:
                streams.remove(stream)
                continue
            batches.append(
                [
                    (
                        event_id,
                        account.account_id,
                        tenant,
                        partner,
                        1,
                        1,
                        at_us,
                        period,
                        False,
                        at_us,
                    )
                    for account, event_id, tenant, partner in batch
                ]
            )
    return batches


def _insert_sql(table: str, mark: str) -> str:
    columns = _EVENT_COLUMNS.split(",")
    return f"INSERT INTO {table} ({_EVENT_COLUMNS}) VALUES ({','.join([mark] * len(columns))})"


# The bare floor's table, fixed whatever layout the service's raw events take: the columns of
# the events, keyed (account, event id), WITHOUT ROWID on SQLite (the service's table until
# issue 16's layout work).
_FLOOR_COLUMNS = (
    "event_id TEXT NOT NULL, account_id TEXT NOT NULL, tenant_id TEXT NOT NULL, "
    "partner_id TEXT NOT NULL, kind INTEGER NOT NULL, quantity BIGINT NOT NULL, "
    "occurred_at_us BIGINT NOT NULL, period TEXT NOT NULL, late BOOLEAN NOT NULL, "
    "received_at_us BIGINT NOT NULL, PRIMARY KEY (account_id, event_id)"
)
FLOOR_TABLE = "floor_event"


def floor_sqlite(store_path: str, floor_path: str, batches: list[list[tuple[Any, ...]]]) -> float:
    """Rows/s of the bare floor: a file of its own holding the store's raw events, taking
    ``batches`` one commit each."""
    connection = sqlite3.connect(floor_path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute(f"CREATE TABLE {FLOOR_TABLE} ({_FLOOR_COLUMNS}) WITHOUT ROWID")
        connection.execute("ATTACH ? AS store", (store_path,))
        connection.execute("BEGIN")
        connection.execute(
            f"INSERT INTO {FLOOR_TABLE} SELECT * FROM ({STORED_EVENTS_SQL}) "
            "ORDER BY account_id, event_id"
        )
        connection.execute("COMMIT")
        connection.execute("DETACH store")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        statement = _insert_sql(FLOOR_TABLE, "?")
        started = time.perf_counter()
        for batch in batches:
            connection.execute("BEGIN")
            connection.executemany(statement, batch)
            connection.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    return sum(len(batch) for batch in batches) / seconds


def floor_postgres(url: str, batches: list[list[tuple[Any, ...]]]) -> float:
    """Rows/s of bare psycopg into a copy of the store's raw events (same keys, same rows),
    ``executemany … ON CONFLICT DO NOTHING``, one transaction per batch; dropped after."""
    import psycopg

    with psycopg.connect(_dsn(url), autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {FLOOR_TABLE} ({_FLOOR_COLUMNS})")
        connection.execute(
            f"INSERT INTO {FLOOR_TABLE} SELECT * FROM ({STORED_EVENTS_SQL}) "
            "AS stored ORDER BY account_id, event_id"
        )
        connection.execute(f"VACUUM ANALYZE {FLOOR_TABLE}")
        statement = _insert_sql(FLOOR_TABLE, "%s") + " ON CONFLICT DO NOTHING"
        started = time.perf_counter()
        for batch in batches:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(statement, batch)
        seconds = time.perf_counter() - started
        connection.execute(f"DROP TABLE {FLOOR_TABLE}")
    return sum(len(batch) for batch in batches) / seconds


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def service_stream(url: str, accounts_file: str, plan: StreamPlan) -> dict[str, Any]:
    """Stream ``plan`` through ``billing-svc serve`` on ``url``; the producer's figures, the
    server's CPU per event, and the messages the service counts over every account."""
    # The start reads the whole event log into the dedupe index (SQLite): ~25 s at 50M stored.
    service = ServiceProcess(url, BILLING_LOG_LEVEL="info", **_DEPLOYED).start(timeout=600)
    try:
        cpu_before = _cpu_seconds(service.process.pid)
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.producer",
                "--target",
                service.target,
                "--token",
                TOKENS["producer"][0],
                "--accounts-file",
                accounts_file,
                "--ids",
                plan.kind,
                "--seed",
                str(plan.seed),
                "--events",
                str(plan.events),
                "--streams",
                str(plan.streams),
                "--batch",
                str(plan.batch_size),
                "--accounts-per-batch",
                str(plan.accounts_per_batch),
                "--occurred",
                str(int(time.time()) - 1),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = _cpu_seconds(service.process.pid) - cpu_before
        result = json.loads(output.strip().splitlines()[-1])
        result["rate"] = result["events"] / result["seconds"]
        result["cpu_us_per_event"] = cpu / result["events"] * 1e6
        result["load"] = os.getloadavg()[0]
        result["kernel"] = _kernel_was_active(service.output())
        result["counted"] = counted_messages(service.target, accounts_file)
        return result
    finally:
        service.kill()


def counted_messages(target: str, accounts_file: str) -> int:
    """The period's messages GetCurrentUsage reports, summed over the accounts."""
    with open(accounts_file) as handle:
        account_ids = [item["account_id"] for item in json.load(handle)]
    client = Client(target)
    try:
        return sum(
            client.usage.GetCurrentUsage(
                upb.GetCurrentUsageRequest(account_id=account_id), metadata=auth("usage-reader")
            ).usage_to_date.messages
            for account_id in account_ids
        )
    finally:
        client.close()


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _checkpoint(path: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _base_key(accounts: int) -> str:
    """What a cached base store depends on: the accounts, the schema (the last migration) and
    the month (accounts start in it; the streamed events' period)."""
    versions = ROOT / "src" / "billing_svc" / "storage" / "migrations" / "versions"
    head = sorted(path.stem for path in versions.glob("*.py"))[-1]
    return f"base-{accounts}-{head}-{datetime.now(UTC):%Y-%m}"


class SqliteBackend:
    name = "SQLite"
    floor_label = "bare `sqlite3`"

    def __init__(self, directory: str, cache: str | None = None) -> None:
        self.directory = directory
        self.base = f"{directory}/base.db"
        self.cache = cache

    def make_base(self, accounts: int) -> list[BenchAccount]:
        """The accounts, made through the API (minutes for 1,000), or copied from ``cache``
        when a run made them there before (nothing timed depends on how they were made)."""
        cached = f"{self.cache}/{_base_key(accounts)}" if self.cache else None
        if cached and os.path.exists(f"{cached}.json"):
            shutil.copyfile(f"{cached}.db", self.base)
            with open(f"{cached}.json") as handle:
                return [BenchAccount.from_json(item) for item in json.load(handle)]
        service = ServiceProcess(f"sqlite:///{self.base}", BILLING_LOG_LEVEL="warning").start()
        try:
            made = create_accounts(service.target, accounts, TENANTS, PARTNERS)
        finally:
            service.terminate()
        _checkpoint(self.base)
        if cached:
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            shutil.copyfile(self.base, f"{cached}.db")
            with open(f"{cached}.json.part", "w") as handle:  # written last: the entry is whole
                json.dump([account.as_json() for account in made], handle)
            os.replace(f"{cached}.json.part", f"{cached}.json")
        return made

    @contextmanager
    def store(self) -> Iterator[str]:
        path = f"{self.directory}/store.db"
        shutil.copyfile(self.base, path)
        try:
            yield f"sqlite:///{path}"
        finally:
            _remove(path)

    def floor(self, url: str, batches: list[list[tuple[Any, ...]]]) -> float:
        store_path = url.removeprefix("sqlite:///")
        _checkpoint(store_path)
        floor_path = f"{self.directory}/floor.db"
        try:
            return floor_sqlite(store_path, floor_path, batches)
        finally:
            _remove(floor_path)

    def close(self) -> None:
        _remove(self.base)


class PostgresBackend:
    name = "PostgreSQL"
    floor_label = "bare psycopg"

    def __init__(self, base_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = make_url(base_url)
        self.admin_dsn = _dsn(base_url)
        self.base = f"billing_scale_base_{os.getpid()}"

    def _url(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def make_base(self, accounts: int) -> list[BenchAccount]:
        from tests.support import _create_database

        _create_database(self.admin_dsn, self.base)
        service = ServiceProcess(self._url(self.base), BILLING_LOG_LEVEL="warning").start()
        try:
            made = create_accounts(service.target, accounts, TENANTS, PARTNERS)
        finally:
            service.terminate()
        return made

    @contextmanager
    def store(self) -> Iterator[str]:
        from tests.support import _create_database, _drop_database

        name = f"{self.base}_point"
        _create_database(self.admin_dsn, name, self.base)
        try:
            yield self._url(name)
        finally:
            _drop_database(self.admin_dsn, name)

    def floor(self, url: str, batches: list[list[tuple[Any, ...]]]) -> float:
        return floor_postgres(url, batches)

    def close(self) -> None:
        from tests.support import _drop_database

        _drop_database(self.admin_dsn, self.base)


_TABLE_HEAD = (
    "| ids | events stored | floor | billing-svc | ratio | server CPU per event "
    "| load average | run |",
    "|---|---|---|---|---|---|---|---|",
)


def _section(backend: str, kind: str) -> str:
    return f"scale-{backend.lower()}-{kind}"


def _kept_rows(name: str, replaced: set[str]) -> dict[int, str]:
    """The rows of section ``name`` in BENCHMARKS.md by events stored, but those of the points
    in ``replaced``: a run of some points (``--points``) keeps the others' figures."""
    from benchmarks.report import PATH

    text = PATH.read_text() if PATH.exists() else ""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text:
        return {}
    rows = {}
    for line in text.split(start, 1)[1].split(end, 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if (
            line.startswith("| ")
            and len(cells) == len(_TABLE_HEAD[0].split("|")) - 2
            and cells[1].replace(",", "").isdigit()
            and cells[1] not in replaced
        ):
            rows[int(cells[1].replace(",", ""))] = line
    return rows


def run_curve(
    backend: Any, kinds: list[str], points: list[int], events: int, accounts: int, directory: str
) -> None:
    """Every point of every kind on ``backend``, each written to BENCHMARKS.md when measured."""
    made = backend.make_base(accounts)
    accounts_file = f"{directory}/accounts.json"
    with open(accounts_file, "w") as handle:
        json.dump([account.as_json() for account in made], handle)
    try:
        for kind in kinds:
            plan = StreamPlan(kind, SEED, STREAMS, events)
            name = _section(backend.name, kind)
            for point in points:
                per_account = point // len(made)
                with backend.store() as url:
                    started = time.perf_counter()
                    stored = prefill_usage(url, made, per_account, kind, SEED, datetime.now(UTC))
                    prefill_seconds = time.perf_counter() - started
                    now_us = to_us(datetime.now(UTC))
                    batches = floor_rows(
                        plan, made, now_us, Period.containing(datetime.now(UTC)).label
                    )
                    floor = backend.floor(url, batches)
                    del batches
                    result = service_stream(url, accounts_file, plan)
                expected = stored + plan.per_stream * plan.streams
                assert result["accepted"] == plan.per_stream * plan.streams, result
                assert result["counted"] == expected, (result["counted"], expected)
                assert result["kernel"] or backend.name != "SQLite", "ingestion kernel inactive"
                rows = _kept_rows(name, {f"{stored:,}"})
                rows[stored] = (
                    f"| {LABELS[kind]} | {stored:,} | {floor:,.0f} events/s "
                    f"| {result['rate']:,.0f} events/s | {result['rate'] / floor:.2f}× "
                    f"| {result['cpu_us_per_event']:.2f} µs | {result['load']:.1f} "
                    f"| {datetime.now(UTC):%Y-%m-%d %H:%M} |"
                )
                write_section(
                    name,
                    "\n".join(
                        [
                            f"#### {backend.name}, {LABELS[kind]} ids, "
                            f"floor: {backend.floor_label}\n",
                            *_TABLE_HEAD,
                            *(rows[key] for key in sorted(rows)),
                        ]
                    ),
                )
                print(
                    f"[scale] {backend.name} {kind} {stored:,} stored (pre-filled in "
                    f"{prefill_seconds:.0f} s): floor {floor:,.0f}/s, service "
                    f"{result['rate']:,.0f}/s",
                    flush=True,
                )
    finally:
        backend.close()


def main(
    quick: bool = False,
    points: list[int] | None = None,
    ids: list[str] | None = None,
    events: int | None = None,
    backends: list[str] | None = None,
    cache: str | None = None,
) -> str:
    """``cache``: a directory where the SQLite base store (the accounts) is kept and reused."""
    kinds = ids or list(KINDS)
    pg = os.environ.get(PG_URL_ENV)
    backends = backends or (["sqlite", "postgres"] if pg else ["sqlite"])
    if "postgres" in backends and not pg:
        raise SystemExit(f"the postgres backend needs {PG_URL_ENV}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"unknown id kinds {unknown}; choose from {', '.join(KINDS)}")
    events = events or (100_000 if quick else 500_000)
    accounts = 100 if quick else ACCOUNTS
    sqlite_points = points or list(QUICK_POINTS if quick else SQLITE_POINTS)
    pg_points = (
        [p for p in points if p <= 10_000_000]
        if points
        else list(QUICK_POINTS[:2] if quick else POSTGRES_POINTS)
    )
    body = (
        f"## Ingestion at scale: random ids, many accounts, a full store\n\n"
        f"Machine: {describe()}. **Shared with other work**: the load average (1 min) is "
        "beside each figure, on 2 cores.\n\n"
        f"{accounts:,} accounts of {TENANTS} tenants and {PARTNERS} master partners; "
        f"{events:,} message events streamed by a separate producer process (4 streams, "
        "batches of 1,000 over 10 accounts each) into `billing-svc serve` with its deployed "
        "settings, on a store pre-filled with the events shown (spread evenly over the "
        "accounts, ids of the same kind, counters to match). Floor: the same table, keys and "
        "stored rows, measured just before in the same run (SQLite: WITHOUT ROWID keyed "
        "(account, event id), WAL, `synchronous=FULL`, 1,000 rows per commit; PostgreSQL: "
        "`executemany … ON CONFLICT DO NOTHING`, 1,000 rows per transaction). "
        "`./dev bench scale [--points 0,1000000] [--ids uuid4,sequential] [--events N] "
        "[--cache DIR]`; "
        "each table keeps the figures of points not run again."
    )
    write_section("scale", body)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
        if "sqlite" in backends:
            run_curve(
                SqliteBackend(directory, cache), kinds, sqlite_points, events, accounts, directory
            )
        if pg and "postgres" in backends:
            run_curve(PostgresBackend(pg), kinds, pg_points, events, accounts, directory)
    return body
