"""Ingestion throughput against bare-driver baselines, and GetCurrentUsage latency vs data size.

- SQLite: a producer process streams N events (batches of 1,000) to `billing-svc serve`; the
  baseline is bare `sqlite3` `executemany` of the same rows into a table with a unique
  (account, event id) key, one transaction per 1,000 rows, same pragmas (WAL, synchronous=FULL).
  Baseline and service alternate for several rounds and the median ratio is reported: this
  machine's speed drifts by 15 % within minutes, more than the differences measured. One more
  round runs the service with its compiled kernel switched off (the Python path).
- PostgreSQL (when BILLING_TEST_DATABASE_URL is set): the same against bare psycopg
  `executemany ... ON CONFLICT DO NOTHING`.
- GetCurrentUsage p99 with many stored events vs few (reads never scan raw events).
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb

from benchmarks.machine import describe, rss_mib
from benchmarks.report import write_section
from billing_svc.settings import Settings
from tests.support import TOKENS, Client, ServiceProcess, auth, fresh_database

ROOT = Path(__file__).resolve().parent.parent


def _rows(n: int, prefix: str = "e") -> list[tuple]:
    now_us = int(time.time() * 1_000_000)
    return [
        ("acc_bench", f"{prefix}-{i}", "ten_a", "prt_a", 1, 1, now_us, "2026-11", False, now_us)
        for i in range(n)
    ]


def baseline_sqlite(n: int, directory: str) -> float:
    path = os.path.join(directory, "baseline.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE usage_event (account_id TEXT, event_id TEXT, tenant_id TEXT, "
        "partner_id TEXT, kind INT, quantity INT, occurred_at_us INT, period TEXT, "
        "late INT, received_at_us INT, UNIQUE (account_id, event_id))"
    )
    rows = _rows(n)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO usage_event VALUES (?,?,?,?,?,?,?,?,?,?)", rows[start : start + 1000]
        )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return n / seconds


def baseline_postgres(n: int, url: str) -> float:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    rows = _rows(n)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE usage_event_baseline (account_id TEXT, event_id TEXT, "
            "tenant_id TEXT, partner_id TEXT, kind INT, quantity BIGINT, "
            "occurred_at_us BIGINT, period TEXT, late BOOLEAN, received_at_us BIGINT, "
            "PRIMARY KEY (account_id, event_id))"
        )
        started = time.perf_counter()
        for start in range(0, n, 1000):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO usage_event_baseline VALUES "
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                    rows[start : start + 1000],
                )
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE usage_event_baseline")
    return n / seconds


def _setup_account(client: Client) -> tuple[str, list[str], list[str]]:
    account = client.billing.CreateAccount(
        pb.CreateAccountRequest(name="Bench Co", plan_id="enterprise", skip_trial=True),
        metadata=auth("admin"),
    ).account
    tenants = [
        client.billing.CreateTenant(
            pb.CreateTenantRequest(account_id=account.account_id, name=f"t{i}"),
            metadata=auth("admin"),
        ).tenant.tenant_id
        for i in range(4)
    ]
    partners = [
        client.billing.CreateMasterPartner(
            pb.CreateMasterPartnerRequest(account_id=account.account_id, name=f"p{i}"),
            metadata=auth("admin"),
        ).master_partner.partner_id
        for i in range(8)
    ]
    return account.account_id, tenants, partners


# The service as deployed: the settings' own poll intervals, not the test harness's faster ones.
_DEPLOYED = {
    f"BILLING_{name.upper()}": str(Settings.model_fields[name].default)
    for name in ("scheduler_interval_seconds", "webhook_dispatch_interval_seconds")
}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_run(url: str, n: int, streams: int, **env: str) -> dict:
    service = ServiceProcess(url, BILLING_LOG_LEVEL="info", **{**_DEPLOYED, **env}).start()
    client = Client(service.target)
    try:
        account_id, tenants, partners = _setup_account(client)
        peak = [0.0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib(service.process.pid)[0])
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
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
                "--account",
                account_id,
                "--tenants",
                ",".join(tenants),
                "--partners",
                ",".join(partners),
                "--events",
                str(n),
                "--streams",
                str(streams),
                "--occurred",
                str(int(time.time()) - 60),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = _cpu_seconds(service.process.pid) - cpu_before
        done.set()
        watcher.join()
        result = json.loads(output.strip().splitlines()[-1])
        usage = client.usage.GetCurrentUsage(
            upb.GetCurrentUsageRequest(account_id=account_id), metadata=auth("usage-reader")
        ).usage_to_date
        assert usage.messages == n, (usage.messages, n)
        result["rate"] = result["events"] / result["seconds"]
        result["peak_rss_mib"] = peak[0]
        result["cpu_us_per_event"] = cpu / n * 1e6
        result["account_id"] = account_id
        result["kernel"] = _kernel_was_active(service.output())
        return result
    finally:
        client.close()
        service.kill()


def _kernel_was_active(log: str) -> bool:
    """What the service said at start about its ingestion kernel (one JSON object per line)."""
    for line in log.splitlines():
        if '"ingestion_kernel"' in line:
            return bool(json.loads(line).get("active"))
    return False


def _remove_database(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def sqlite_rounds(n: int, streams: int, rounds: int, directory: str) -> list[str]:
    """Baseline and service, alternating; then the service without its kernel."""
    lines = [
        "| round | baseline (bare `sqlite3`) | billing-svc | ratio | server CPU per event "
        "| server peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    ratios, baselines = [], []
    for round_number in range(1, rounds + 1):
        base = baseline_sqlite(n, directory)
        url = f"sqlite:///{directory}/service.db"
        result = service_run(url, n, streams)
        _remove_database(url)
        assert result["kernel"], "the ingestion kernel was not active: see `./dev` install log"
        ratios.append(result["rate"] / base)
        baselines.append(base)
        lines.append(
            f"| {round_number} | {base:,.0f} events/s | {result['rate']:,.0f} events/s "
            f"| {ratios[-1]:.2f}× | {result['cpu_us_per_event']:.2f} µs "
            f"| {result['peak_rss_mib']:.0f} MiB |"
        )
    url = f"sqlite:///{directory}/python-path.db"
    python_path = service_run(url, n, streams, BILLING_NATIVE_INGESTION="false")
    _remove_database(url)
    median_base = statistics.median(baselines)
    lines += [
        "",
        f"**Median ratio: {statistics.median(ratios):.2f}×** (goal ≥ 1.0×; "
        f"{min(ratios):.2f}×-{max(ratios):.2f}× over {rounds} round(s)).",
        "",
        f"The same run with the compiled kernel switched off "
        f"(`BILLING_NATIVE_INGESTION=false`, every batch on the Python path): "
        f"{python_path['rate']:,.0f} events/s, {python_path['rate'] / median_base:.2f}× "
        f"the median baseline, {python_path['cpu_us_per_event']:.2f} µs of server CPU "
        f"per event.",
    ]
    return lines


def current_usage_p99(url: str, stored_events: int, calls: int = 2000) -> float:
    """p99 (ms) of GetCurrentUsage for an account with ``stored_events`` raw events, loaded in
    bulk straight into the tables (the read path never touches raw events either way)."""
    service = ServiceProcess(url, BILLING_LOG_LEVEL="warning").start()
    client = Client(service.target)
    try:
        account_id, tenants, partners = _setup_account(client)
        _bulk_load(url, account_id, tenants, partners, stored_events)
        request = upb.GetCurrentUsageRequest(account_id=account_id)
        metadata = auth("usage-reader")
        for _ in range(300):  # warm caches, connections and the page cache alike
            client.usage.GetCurrentUsage(request, metadata=metadata)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            client.usage.GetCurrentUsage(request, metadata=metadata)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return times[int(len(times) * 0.99) - 1]
    finally:
        client.close()
        service.kill()


def _bulk_load(url: str, account_id: str, tenants: list[str], partners: list[str], n: int) -> None:
    from sqlalchemy import create_engine, text

    from billing_svc.domain.periods import Period

    period = Period.containing(datetime.now(UTC))
    start_us = int(period.start.timestamp() * 1_000_000)
    engine = create_engine(url)
    chunk = 200_000
    with engine.begin() as conn:
        for base in range(0, n, chunk):
            rows = [
                {
                    "a": account_id,
                    "e": f"bulk-{i}",
                    "t": tenants[i % len(tenants)],
                    "p": partners[i % len(partners)],
                    "o": start_us + i,
                    "per": period.label,
                    "r": start_us + i,
                }
                for i in range(base, min(base + chunk, n))
            ]
            conn.execute(
                text(
                    "INSERT INTO usage_event (account_id, event_id, tenant_id, partner_id, kind, "
                    "quantity, occurred_at_us, period, late, received_at_us) VALUES "
                    "(:a, :e, :t, :p, 1, 1, :o, :per, false, :r)"
                ),
                rows,
            )
        conn.execute(
            text(
                "INSERT INTO usage_period (account_id, period, messages, late_messages, "
                "late_billed_messages) VALUES (:a, :p, :n, 0, 0)"
            ),
            {"a": account_id, "p": period.label, "n": n},
        )
    if url.startswith("sqlite"):  # fold the bulk load's WAL into the database first
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def main(quick: bool = False) -> str:
    n = 100_000 if quick else 1_000_000
    streams, rounds = 4, (1 if quick else 3)
    lines = [
        f"## Usage ingestion\n\nMachine: {describe()}\n",
        f"{n:,} message events in batches of 1,000, {streams} concurrent streams from a "
        "separate producer process, into `billing-svc serve` with its deployed settings.\n",
        "### SQLite\n",
    ]
    with tempfile.TemporaryDirectory() as directory:
        lines += sqlite_rounds(n, streams, rounds, directory)
        pg = os.environ.get("BILLING_TEST_DATABASE_URL")
        if pg:
            with fresh_database(directory) as url:
                base_pg = baseline_postgres(n, url)
                result_pg = service_run(url, n, streams)
            ratio_pg = result_pg["rate"] / base_pg
            lines += [
                "",
                "### PostgreSQL\n",
                "| baseline (bare psycopg) | billing-svc | ratio | goal | server peak RSS |",
                "|---|---|---|---|---|",
                f"| {base_pg:,.0f} events/s | {result_pg['rate']:,.0f} events/s | "
                f"{ratio_pg:.2f}× | ≥ 0.8× | {result_pg['peak_rss_mib']:.0f} MiB |",
            ]
        small, large = 10_000, (1_000_000 if quick else 10_000_000)
        p99_small = current_usage_p99(f"sqlite:///{directory}/small.db", small)
        p99_large = current_usage_p99(f"sqlite:///{directory}/large.db", large)
        lines += [
            "",
            "### GetCurrentUsage p99 over 2,000 sequential calls (SQLite)",
            "",
            "| stored events | p99 | ratio to the small account | goal |",
            "|---|---|---|---|",
            f"| {small:,} | {p99_small:.2f} ms | 1.00× | |",
            f"| {large:,} | {p99_large:.2f} ms | {p99_large / p99_small:.2f}× | ≤ 1.5× |",
        ]
    body = "\n".join(lines)
    write_section("ingestion", body)
    return body
