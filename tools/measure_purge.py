"""Measure what a stored usage event costs on disk and how long a purge chunk holds SQLite's
write lock (README, "Data lifecycle and sizing").

    .venv/bin/python -m tools.measure_purge [--events 1000000] [--accounts 100] [DIR]

Builds a migrated SQLite database of ``--events`` usage events with UUIDv4 event ids (what most
producers send), half of them in an invoiced period old enough to purge, half in a recent one,
then prints the file size per event and the purge's chunk durations. A one-off measurement,
not a benchmark: it does not run in the test suite or in ``./dev bench``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from billing_svc.domain.periods import Period
from billing_svc.domain.usage import to_us
from billing_svc.services import retention
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade


def _id(prefix: str, n: int) -> str:
    return f"{prefix}_{n:026d}"  # as long as the service's ULID-based ids


def build(path: str, events: int, accounts: int, now: datetime) -> tuple[Period, Period]:
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    old = Period.containing(now - timedelta(days=460))
    recent = Period.containing(now - timedelta(days=20))
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    stamp = now.isoformat()
    rows = []
    for a in range(accounts):
        account = _id("acc", a)
        rows.append(
            (
                account,
                _id("cus", a),
                _id("sub", a),
                f"Account {a}",
                "startup",
                "monthly",
                "active",
                stamp,
                stamp,
                stamp,
                "[75,90,100]",
            )
        )
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO account (account_id, customer_id, subscription_id, name, plan_id, "
        "billing_interval, status, created_at, registered_at, updated_at, usage_thresholds, "
        "cancel_at_period_end) VALUES (?,?,?,?,?,?,?,?,?,?,?,0)",
        rows,
    )
    connection.executemany(
        "INSERT INTO invoice (invoice_id, account_id, period, status, currency_code, subtotal, "
        "total, amount_paid, lines_json, tenant_breakdown_json, failed_attempts, created_at) "
        "VALUES (?,?,?,'paid','USD','0','0','0','[]','[]',0,?)",
        [(_id("inv", a), _id("acc", a), old.label, stamp) for a in range(accounts)],
    )
    for period in (old, recent):
        connection.executemany(
            "INSERT INTO usage_period (account_id, period, messages, late_messages, "
            "late_billed_messages) VALUES (?,?,?,0,0)",
            [(_id("acc", a), period.label, events // accounts // 2) for a in range(accounts)],
        )
    connection.execute("COMMIT")
    rng = random.Random(16)
    old_start, recent_start = to_us(old.start), to_us(recent.start)
    month_us = 28 * 86_400 * 10**6
    per_commit = 20_000
    for start in range(0, events, per_commit):
        batch = []
        for n in range(start, min(start + per_commit, events)):
            a = rng.randrange(accounts)
            base = old_start if n % 2 else recent_start
            occurred = base + rng.randrange(month_us)
            batch.append(
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    _id("acc", a),
                    _id("ten", a * 10 + rng.randrange(10)),
                    _id("par", a * 20 + rng.randrange(20)),
                    1,
                    rng.randrange(1, 50),
                    occurred,
                    (old if n % 2 else recent).label,
                    0,
                    occurred + 10**6,
                )
            )
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO usage_event (event_id, account_id, tenant_id, partner_id, kind, "
            "quantity, occurred_at_us, period, late, received_at_us) VALUES (?,?,?,?,?,?,?,?,?,?)",
            batch,
        )
        connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return old, recent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", default=None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument(
        "--chunk-rows",
        default="",
        help="comma-separated fixed usage chunk sizes to compare (default: the service's own)",
    )
    args = parser.parse_args()
    directory = args.directory or tempfile.mkdtemp(prefix="measure-purge-")
    path = os.path.join(directory, "purge.db")
    built = os.path.join(directory, "built.db")  # a second run in DIR purges a copy of it
    now = datetime.now(UTC)
    if not os.path.exists(built):
        started = time.perf_counter()
        build(built, args.events, args.accounts, now)
        print(f"built {args.events:,} events in {time.perf_counter() - started:.0f} s")
    sizes = [int(n) for n in args.chunk_rows.split(",") if n] or [0]
    for rows in sizes:
        shutil.copyfile(built, path)
        _measure(path, args.events, now, rows)


def _measure(path: str, events: int, now: datetime, rows: int) -> None:
    """Purge a copy of the built database, usage chunks of ``rows`` rows (0: sized as the
    service sizes them), and print what the chunks cost."""
    size = os.path.getsize(path)
    print(f"{size:,} bytes, {size / events:.0f} bytes per event")
    if rows:
        retention.CHUNK_ROWS = retention.MIN_CHUNK_ROWS = retention.MAX_CHUNK_ROWS = rows
    db = Database(f"sqlite:///{path}", background_checkpoints=True)  # as serve and purge do
    started = time.perf_counter()
    summary = retention.purge(db, retention.RetentionPolicy(usage_days=400), now)
    seconds = time.perf_counter() - started
    db.dispose()
    chunks = sorted(summary.chunk_seconds)
    ms = [c * 1000 for c in chunks]
    print(
        f"purged {summary.usage_events:,} events in {len(chunks)} chunks of at most "
        f"{rows or retention.MAX_CHUNK_ROWS} rows (largest "
        f"{summary.usage_chunk_rows_max}; load {os.getloadavg()[0]:.1f}): "
        f"median {statistics.median(ms):.1f} ms, "
        f"p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms, max {ms[-1]:.1f} ms (write lock held, "
        f"commit included); {summary.usage_events / seconds:,.0f} events/s overall"
    )


if __name__ == "__main__":
    main()
