"""A store that already holds N usage events, made in seconds rather than hours of ingestion.

The accounts are made through the API (``create_accounts``: the service writes them, their
tenants and partners, with their audit records, as it always does). Their events are then
inserted in bulk, in key order, by ``prefill_usage``, with the counters and roll-ups ingestion
would have left: GetCurrentUsage and every other read see the same totals, and a resent event is
a duplicate. ``prefill_usage`` (with ``STORED_EVENTS_SQL``) is the one place that knows how raw
events and their counters are laid out: a storage layout change updates it, and the scale and
soak suites follow. On SQLite the events are appended to the event log (``0017_usage_layout``:
log ids in key order, no mark in ``usage_log_mark``, as migrated rows have none); the service
builds its dedupe index from the log when it starts (storage.event_index), so nothing else is
written for them. On PostgreSQL they go to their month's partition with their dedupe keys.

The pre-filled hour is not marked for the hourly report job: a burst of a report per account at
the start of a timed run would be measured as ingestion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from as2aas.billing.v1 import billing_service_pb2 as pb

from benchmarks.ids import BenchAccount, prefill_ids
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import to_us
from billing_svc.storage.usage import _EVENT_COLUMNS
from tests.support import Client, auth

# The stored raw events, columns as ``_EVENT_COLUMNS``: how the scale suite's bare floor copies
# the store's rows into its own table. With ``prefill_usage``, the only SQL of the benchmarks
# that knows where raw events live.
STORED_EVENTS_SQL = f"SELECT {_EVENT_COLUMNS} FROM usage_event"
HOUR_US = 3_600_000_000
MESSAGE = 1
_ROWS_PER_COMMIT = 500_000


def create_accounts(
    target: str, accounts: int, tenants: int = 10, partners: int = 20, workers: int = 8
) -> list[BenchAccount]:
    """``accounts`` Enterprise accounts (no trial), each with ``tenants`` tenants and
    ``partners`` master partners, sorted by account id (the key order)."""
    client = Client(target)
    admin = auth("admin")

    def one(number: int) -> BenchAccount:
        account_id = client.billing.CreateAccount(
            pb.CreateAccountRequest(
                name=f"Scale Co {number}", plan_id="enterprise", skip_trial=True
            ),
            metadata=admin,
        ).account.account_id
        tenant_ids = tuple(
            client.billing.CreateTenant(
                pb.CreateTenantRequest(account_id=account_id, name=f"tenant {i}"), metadata=admin
            ).tenant.tenant_id
            for i in range(tenants)
        )
        partner_ids = tuple(
            client.billing.CreateMasterPartner(
                pb.CreateMasterPartnerRequest(account_id=account_id, name=f"partner {i}"),
                metadata=admin,
            ).master_partner.partner_id
            for i in range(partners)
        )
        return BenchAccount(account_id, tenant_ids, partner_ids)

    try:
        with ThreadPoolExecutor(workers) as pool:
            made = list(pool.map(one, range(accounts)))
    finally:
        client.close()
    return sorted(made, key=lambda account: account.account_id)


def _counts(n: int, modulus: int) -> list[int]:
    """How many of ``range(n)`` fall on each residue of ``modulus``."""
    return [n // modulus + (1 if r < n % modulus else 0) for r in range(modulus)]


def event_rows(
    accounts: list[BenchAccount], per_account: int, kind: str, seed: int, at_us: int, period: str
) -> Iterator[tuple[Any, ...]]:
    """The stored events, in key order (account, event id), columns as ``_EVENT_COLUMNS``."""
    for index, account in enumerate(accounts):
        tenants, partners = account.tenants, account.partners
        t, p = len(tenants), len(partners)
        for j, event_id in enumerate(prefill_ids(kind, seed, index, per_account)):
            yield (
                event_id,
                account.account_id,
                tenants[j % t],
                partners[j % p],
                MESSAGE,
                1,
                at_us,
                period,
                False,
                at_us,
            )


def counter_rows(
    accounts: list[BenchAccount], per_account: int, period: str, hour_us: int
) -> dict[str, list[tuple[Any, ...]]]:
    """What ingestion's counters and roll-ups hold after ``event_rows``: by table, rows as the
    upserts below take them."""
    rows: dict[str, list[tuple[Any, ...]]] = {
        "period": [],
        "tenant": [],
        "partner": [],
        "hourly": [],
    }
    if per_account == 0:
        return rows
    for account in accounts:
        a, tenants, partners = account.account_id, account.tenants, account.partners
        rows["period"].append((a, period, per_account))
        rows["tenant"] += [
            (a, period, tenant, count)
            for tenant, count in zip(tenants, _counts(per_account, len(tenants)), strict=True)
            if count
        ]
        rows["partner"] += [
            (a, period, partner, count)
            for partner, count in zip(partners, _counts(per_account, len(partners)), strict=True)
            if count
        ]
        cycle = math.lcm(len(tenants), len(partners))  # event j: tenant j % t, partner j % p
        rows["hourly"] += [
            (a, hour_us, tenants[r % len(tenants)], partners[r % len(partners)], count)
            for r, count in enumerate(_counts(per_account, cycle))
            if count
        ]
    return rows


_UPSERTS = {
    "period": "INSERT INTO usage_period (account_id, period, messages, late_messages, "
    "late_billed_messages) VALUES (?,?,?,0,0) ON CONFLICT (account_id, period) "
    "DO UPDATE SET messages = usage_period.messages + excluded.messages",
    "tenant": "INSERT INTO usage_tenant_period (account_id, period, tenant_id, messages, "
    "storage_byte_us) VALUES (?,?,?,?,'0') ON CONFLICT (account_id, period, tenant_id) "
    "DO UPDATE SET messages = usage_tenant_period.messages + excluded.messages",
    "partner": "INSERT INTO usage_partner_period (account_id, period, partner_id, messages) "
    "VALUES (?,?,?,?) ON CONFLICT (account_id, period, partner_id) "
    "DO UPDATE SET messages = usage_partner_period.messages + excluded.messages",
    "hourly": "INSERT INTO usage_hourly (account_id, hour_us, tenant_id, partner_id, kind, "
    "messages, storage_bytes_max, storage_last_at_us, storage_bytes_last) "
    "VALUES (?,?,?,?,1,?,0,0,0) ON CONFLICT (account_id, hour_us, tenant_id, "
    "partner_id, kind) DO UPDATE SET messages = usage_hourly.messages + "
    "excluded.messages",
}


def prefill_usage(
    url: str, accounts: list[BenchAccount], per_account: int, kind: str, seed: int, now: datetime
) -> int:
    """Store ``per_account`` message events (quantity 1, ids of ``kind``) for each of
    ``accounts``, a second before ``now``, as ingestion would have: the raw events in key order
    and the period, tenant, partner and hourly counters to match. The service must not be
    running (SQLite: the journal is off while it loads). Returns the events stored."""
    # Whole seconds, as the producers stamp theirs: the same event resent is then a duplicate,
    # not a conflict (same id, other content).
    at_us = (to_us(now) // 1_000_000 - 1) * 1_000_000
    period = Period.containing(now).label
    rows = event_rows(accounts, per_account, kind, seed, at_us, period)
    counters = counter_rows(accounts, per_account, period, at_us - at_us % HOUR_US)
    if url.startswith("sqlite"):
        _load_sqlite(url.removeprefix("sqlite:///"), rows, counters)
    else:
        _load_postgres(url, rows, counters)
    return per_account * len(accounts)


def _load_sqlite(
    path: str, rows: Iterator[tuple[Any, ...]], counters: dict[str, list[tuple[Any, ...]]]
) -> None:
    import sqlite3
    from itertools import islice

    marks = ",".join("?" * len(_EVENT_COLUMNS.split(",")))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # Nothing to recover if the load fails half way (the benchmark starts again): no journal.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        while chunk := list(islice(rows, _ROWS_PER_COMMIT)):
            connection.execute("BEGIN")
            connection.executemany(
                f"INSERT INTO usage_event ({_EVENT_COLUMNS}) VALUES ({marks})", chunk
            )
            connection.execute("COMMIT")
        connection.execute("BEGIN")
        for table, statement in _UPSERTS.items():
            connection.executemany(statement, counters[table])
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")  # as the service keeps it
    finally:
        connection.close()


def _load_postgres(
    url: str, rows: Iterator[tuple[Any, ...]], counters: dict[str, list[tuple[Any, ...]]]
) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from billing_svc.storage.db import Database
    from billing_svc.storage.partitions import bucket_of, ensure

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    # PostgreSQL's layout (storage.partitions): each event in the partition of the month it was
    # received in (its bucket), and its dedupe key beside it in usage_event_key, copied from the
    # events in SQL (one pass over ``rows``, none of them held in memory).
    first = next(rows, None)
    if first is None:
        return
    bucket = bucket_of(first[9])  # the pre-fill stores every event at one moment
    db = Database(url)
    try:
        ensure(db, [bucket])
    finally:
        db.dispose()
    with psycopg.connect(dsn) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY usage_event ({_EVENT_COLUMNS}, bucket) FROM STDIN") as copy:
                copy.write_row((*first, bucket))
                for row in rows:
                    copy.write_row((*row, bucket))
            cursor.execute(
                "INSERT INTO usage_event_key (account_id, event_id, occurred_at_us, "
                "bucket) SELECT account_id, event_id, occurred_at_us, bucket "
                "FROM usage_event WHERE bucket = %s "
                "ON CONFLICT DO NOTHING",
                (bucket,),
            )  # earlier events have theirs
        with connection.cursor() as cursor:
            for table, statement in _UPSERTS.items():
                if counters[table]:
                    cursor.executemany(statement.replace("?", "%s"), counters[table])
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE usage_event")
