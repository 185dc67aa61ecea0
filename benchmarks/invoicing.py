"""Closing one period for many accounts with usage (goal: >= 500 invoices/s on SQLite).

Baseline, same run: bare `sqlite3` inserting the same number of invoice-sized rows, one
transaction each (what one invoice per transaction costs at the least).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta

from benchmarks.machine import describe
from benchmarks.report import write_section
from billing_svc.domain.periods import Period
from billing_svc.domain.usage import UsageBatch, UsageEventIn, to_us
from billing_svc.services import accounts, ingestion, invoicing
from billing_svc.services.context import Caller, RequestContext, system_context
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade


def baseline(n: int, directory: str, per_transaction: int) -> float:
    """Bare sqlite3 inserting ``n`` invoice-sized rows, ``per_transaction`` per transaction."""
    conn = sqlite3.connect(
        os.path.join(directory, f"baseline{per_transaction}.db"), isolation_level=None
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE invoice (invoice_id TEXT PRIMARY KEY, account_id TEXT, "
        "period TEXT, total TEXT, lines TEXT, UNIQUE (account_id, period))"
    )
    started = time.perf_counter()
    for first in range(0, n, per_transaction):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO invoice VALUES (?,?,?,?,?)",
            [
                (f"in_{i}", f"acc_{i}", "2026-10", "234.00", "[]" * 200)
                for i in range(first, min(first + per_transaction, n))
            ],
        )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return n / seconds


def setup(db: Database, n: int, period: Period) -> list[str]:
    admin = RequestContext(Caller("bench", frozenset({"admin"})))
    start = period.previous().start
    account_ids = []
    batch: list[UsageEventIn] = []
    at = to_us(period.start + timedelta(days=2))
    for i in range(n):
        account = accounts.create_account(
            db,
            admin,
            name=f"Bench {i}",
            plan_id=("startup", "business")[i % 2],
            billing_interval="monthly",
            skip_trial=True,
            start_time=start,
            usage_thresholds=(),
            key=None,
        )
        tenant = accounts.create_tenant(
            db, admin, account_id=account.account_id, name="t", start_time=start, key=None
        )
        account_ids.append(account.account_id)
        batch.append(
            UsageEventIn(f"e{i}", account.account_id, tenant.tenant_id, "", 1, 1000 + i % 9000, at)
        )
        batch.append(
            UsageEventIn(f"s{i}", account.account_id, tenant.tenant_id, "", 2, (i % 10) * 10**9, at)
        )
        if len(batch) >= 2000:
            ingestion.ingest(db, [UsageBatch("setup", batch)], now_us=to_us(datetime.now(UTC)))
            batch = []
    if batch:
        ingestion.ingest(db, [UsageBatch("setup", batch)], now_us=to_us(datetime.now(UTC)))
    return account_ids


def main(quick: bool = False) -> str:
    n = 1000 if quick else 10_000
    singles = n // 10
    period = Period.containing(datetime.now(UTC)).previous()
    with tempfile.TemporaryDirectory() as directory:
        db = Database(f"sqlite:///{directory}/invoicing.db")
        upgrade(db)
        account_ids = setup(db, n + singles, period)
        with db.write() as session:  # as if registered in billing-svc before the period
            session.connection().exec_driver_sql("UPDATE account SET registered_at = created_at")
        ctx = system_context("bench")
        # CloseBillingPeriod's path: one account, one transaction.
        started = time.perf_counter()
        for account_id in account_ids[:singles]:
            invoicing.close_period(db, ctx, account_id=account_id, period=period)
        single_rate = singles / (time.perf_counter() - started)
        # The automatic closer: every remaining account, in batches.
        started = time.perf_counter()
        closed = 0
        while issued := invoicing.close_due_periods(db, ctx, grace=timedelta(0)):
            closed += issued
        closer_rate = closed / (time.perf_counter() - started)
        assert closed == n, f"the closer issued {closed} invoices, expected {n}"
        base_single = baseline(singles, directory, 1)
        base_batch = baseline(n, directory, invoicing.CLOSE_BATCH)
        db.dispose()
    body = "\n".join(
        [
            "## Closing a period",
            "",
            f"Machine: {describe()}",
            "",
            f"{n:,} accounts (Startup and Business, one tenant, message and storage usage) closed "
            f"by the automatic closer ({invoicing.CLOSE_BATCH} accounts per transaction), and "
            f"{singles:,} more closed one by one as `CloseBillingPeriod` does, SQLite. Each "
            "invoice is rated, written with its lines and tenant breakdown, audited (hash chain) "
            "and put in "
            "the outbox (`billing.invoice_generated`). Baselines: bare sqlite3 inserting one "
            "invoice-sized row per invoice in the same transaction sizes.",
            "",
            "| what | invoices/s | goal |",
            "|---|---|---|",
            f"| bare sqlite3, {invoicing.CLOSE_BATCH} rows per transaction (baseline) "
            f"| {base_batch:,.0f} | |",
            f"| billing-svc automatic closer, {n:,} accounts | {closer_rate:,.0f} | ≥ 500 |",
            f"| bare sqlite3, one row per transaction (baseline) | {base_single:,.0f} | |",
            f"| billing-svc `close_period` one account at a time, {singles:,} accounts "
            f"| {single_rate:,.0f} | |",
        ]
    )
    write_section("invoicing", body)
    return body
