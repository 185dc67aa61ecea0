"""Soak (issue 16, point 5): do the tables stop growing while usage keeps coming and time moves?

``billing-svc serve`` runs on a fast clock (``benchmarks.fastclock``: a 30-day month passes in
two minutes of wall time by default), with short retention settings (raw usage 5 days, the rest
1 day) and the scheduler purging at every tick: each month the period closer invoices the month
before, and the purge deletes its raw events, roll-ups and webhook log. A producer process
streams UUIDv4 events as fast as the service takes them, stamped on the same clock. Every
``sample`` seconds the soak reads the row count of every table, the database file and WAL
sizes, the ingestion rate since the last sample, and the p99 of GetCurrentUsage called without
pause on random accounts.

Verdicts: a table or the file "levels off" when its peak over the last third of the run is
within 10 % of its peak over the middle third (a month or more each: a sawtooth has a peak in
both); ingestion and p99 "hold" when every later minute is within 1.3× of the first.
SQLite only: PostgreSQL's retention drops partitions (issue 16, point 4), another branch's work.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

import grpc
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import common_pb2
from as2aas.billing.v1 import usage_service_pb2 as upb

from benchmarks.fastclock import SPEC_ENV, FastClock
from benchmarks.machine import describe
from benchmarks.prefill import create_accounts
from benchmarks.report import write_section
from billing_svc.storage.checkpoint import DEFAULT_WAL_LIMIT_BYTES
from tests.support import TOKENS, Client, Receiver, ServiceProcess, auth

MONTH_SECONDS = 30 * 86_400
# A month start, so the first months are whole; the year does not matter.
SIM_START = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
TENANTS, PARTNERS = 10, 20
LEVEL_TOLERANCE = 1.10
# Rows a table may differ by between the two peaks and still level off: the small windowed tables
# (idempotency records, the webhook log) hold a few dozen rows, where one scheduler tick more or
# less between sample and purge is more than 10 %.
LEVEL_SLACK_ROWS = 50
# Idempotent calls (IssueCredit with a request_id) per wall second: each leaves an idempotency
# record and a billing.credit_issued event to deliver, what those tables' purges need to show.
CREDITS_PER_SECOND = 10
# Events per second the producer offers (0: as fast as the service takes them). A steady rate,
# as production's ingestion is, and one this machine sustains under the other engineers' load:
# a saturating stream keeps SQLite's one write lock busy with groups of 0.2-0.5 s each, and every
# chunk of the purge (and every other writer) waits a group's time, so the purge gets ~3 chunks
# a second (measured 2026-12-02: docs/decisions.md "Retention: the purge keeps up").
OFFERED_RATE = 3000.0
HOLD_TOLERANCE = 1.3
# What the retention settings keep for a while and then delete; every other table holds records
# kept for ever by design (invoices, the audit trail, accounts) or a handful of rows.
PURGED_TABLES = (
    "usage_event",
    "usage_hourly",
    "outbox_event",
    "webhook_delivery",
    "webhook_attempt",
    "idempotency_record",
    "usage_report",
    "usage_report_due",
)
# Counted every PEAK_SECONDS besides the samples (their peaks between samples): all of them but
# the raw events (a count of 400,000 rows takes ~50 ms, 5 % of a core each second; their peak
# builds over a month, 120 s, so a sample every 10 s is within 8 % of it at each peak alike).
WATCHED_TABLES = tuple(table for table in PURGED_TABLES if table != "usage_event")
PEAK_SECONDS = 1.0
# Records of each account and month, kept for ever by design: they grow with accounts x months,
# not with events (a row or a few per account and month).
KEPT_TABLES = (
    "invoice",
    "account_credit",
    "invoice_line",
    "invoice_tenant_line",
    "audit_record",
    "audit_head",
    "usage_period",
    "usage_tenant_period",
    "usage_partner_period",
    "usage_purged_period",
    "period_notice",
    "plan_segment",
)
SHOWN_TABLES = (
    "usage_event",
    "events purged",
    "usage_hourly",
    "usage_report",
    "usage_report_due",
    "outbox_event",
    "webhook_delivery",
    "webhook_attempt",
    "idempotency_record",
    "invoice",
)
# Samples per row of the report's table (the verdicts use every sample).
TABLE_EVERY = 3


def _settings(month_wall_seconds: float) -> dict[str, str]:
    return {
        # Info: the scheduler's purge logs each run ("purged"), which the report sums up.
        "BILLING_LOG_LEVEL": os.environ.get("BENCH_SOAK_LOG_LEVEL", "info"),
        # A few days: the accept window, at the clock's speed, must be wider than a batch's
        # wait in a loaded server (a day is 4 s of wall time at the default speed).
        "BILLING_USAGE_RETENTION_DAYS": "5",
        "BILLING_WEBHOOK_LOG_RETENTION_DAYS": "1",
        "BILLING_IDEMPOTENCY_RETENTION_DAYS": "1",
        "BILLING_HOURLY_ROLLUP_RETENTION_DAYS": "1",
        # Clock seconds: an hour of the fast clock is a fraction of a wall second, so the
        # scheduler purges at each of its ticks (a wall second apart).
        "BILLING_PURGE_INTERVAL_SECONDS": "3600",
        "BILLING_SCHEDULER_INTERVAL_SECONDS": "1",
        # Every account has a webhook endpoint on a local receiver (plain HTTP on 127.0.0.1).
        "BILLING_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    }


class Sampler:
    """Row counts and file sizes of the database, read from a connection of its own."""

    def __init__(self, path: str) -> None:
        self.path = path

    def counts(self, only: tuple[str, ...] = ()) -> dict[str, int]:
        """Every table's rows (or ``only`` those tables'), and the raw events purged so far."""
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
                if not only or row[0] in only
            ]
            counts = {
                table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in tables
            }
            # Not a table: the raw events the purge has deleted so far, to set against ingestion.
            counts["events purged"] = connection.execute(
                "SELECT coalesce(sum(events_deleted), 0) FROM usage_purged_period"
            ).fetchone()[0]
            return counts
        finally:
            connection.close()

    def sizes_mib(self) -> tuple[float, float]:
        def size(path: str) -> float:
            return os.path.getsize(path) / (1 << 20) if os.path.exists(path) else 0.0

        return size(self.path), size(self.path + "-wal")


class PeakWatch(threading.Thread):
    """The small purged tables' row counts every PEAK_SECONDS, and their peak since the last
    sample: the webhook log fills at each month's invoices and empties a clock day later (4 s of
    wall time), so a count every sample (10 s) saw the peak in one month and not in the next."""

    def __init__(self, sampler: Sampler) -> None:
        super().__init__(daemon=True)
        self.sampler = sampler
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._peaks: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.wait(PEAK_SECONDS):
            counts = self.sampler.counts(WATCHED_TABLES)
            with self._lock:
                for table, rows in counts.items():
                    self._peaks[table] = max(rows, self._peaks.get(table, 0))

    def take(self, counts: dict[str, int]) -> dict[str, int]:
        """``counts`` (a sample's), each table at its peak since the last ``take`` if higher."""
        with self._lock:
            peaks, self._peaks = self._peaks, {}
        return {table: max(rows, peaks.get(table, 0)) for table, rows in counts.items()}


class LatencyProbe(threading.Thread):
    """GetCurrentUsage of a random account, one call after another, each timed."""

    def __init__(self, target: str, account_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = Client(target)
        self.account_ids = account_ids
        self.samples: list[tuple[float, float]] = []  # (wall time, ms)
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        metadata = auth("usage-reader")
        chooser = random.Random(5)
        while not self.stop.is_set():
            request = upb.GetCurrentUsageRequest(account_id=chooser.choice(self.account_ids))
            started = time.perf_counter()
            try:
                self.client.usage.GetCurrentUsage(request, metadata=metadata, timeout=30)
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]  # a call's error is also its Call
            else:
                self.samples.append((time.time(), (time.perf_counter() - started) * 1000))
            time.sleep(0.01)  # ~50 calls/s: a dashboard's polling, not a load of its own

    def p99(self, start: float, end: float) -> float | None:
        times = sorted(ms for at, ms in self.samples if start <= at < end)
        return times[max(int(len(times) * 0.99) - 1, 0)] if times else None


class CreditIssuer(threading.Thread):
    """IssueCredit of a cent, with a request_id, to random accounts at a steady rate: the soak's
    source of idempotency records and of webhook events besides the invoices."""

    def __init__(self, target: str, account_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = Client(target)
        self.account_ids = account_ids
        self.issued = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        metadata = auth("admin")
        chooser = random.Random(7)
        cent = common_pb2.Money(currency_code="USD", units=0, nanos=10_000_000)
        next_at = time.monotonic()
        while not self.stop.is_set():
            request = pb.IssueCreditRequest(
                account_id=chooser.choice(self.account_ids),
                amount=cent,
                description="soak",
                request_id=f"soak-credit-{self.issued}",
            )
            try:
                self.client.billing.IssueCredit(request, metadata=metadata, timeout=30)
                self.issued += 1
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]  # a call's error is also its Call
            next_at += 1 / CREDITS_PER_SECOND
            time.sleep(max(0.0, next_at - time.monotonic()))


class ProducerWatch(threading.Thread):
    """The producer's progress lines: ``(wall time, events accepted so far)``."""

    def __init__(self, process: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.progress: list[tuple[float, int]] = []
        self.final: dict = {}

    def run(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            record = json.loads(line)
            if "wall" in record:
                self.progress.append((record["wall"], record["accepted"]))
            else:
                self.final = record

    def accepted_at(self, moment: float) -> int:
        before = [accepted for at, accepted in self.progress if at <= moment]
        return before[-1] if before else 0

    def rate(self, start: float, end: float) -> float:
        inside = [(at, accepted) for at, accepted in self.progress if start <= at <= end]
        if len(inside) < 2:
            return 0.0
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def purge_runs(log_text: str) -> list[dict]:
    """The scheduler's purge runs the service logged ("purged": those that deleted something)."""
    runs = []
    for line in log_text.splitlines():
        if '"purged"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "purged":
            runs.append(record)
    return runs


def _levels_off(series: list[float], slack: float = 0.0) -> tuple[bool, float]:
    """Peak of the last third against the peak of the middle third: within LEVEL_TOLERANCE, or
    ``slack`` more at most."""
    third = max(len(series) // 3, 1)
    middle = max(series[third : 2 * third] or series[:1])
    last = max(series[2 * third :] or series[-1:])
    ratio = last / middle if middle else (1.0 if not last else float("inf"))
    return ratio <= LEVEL_TOLERANCE or last - middle <= slack, ratio


def soak(
    directory: str,
    minutes: float,
    month_wall_seconds: float,
    accounts: int,
    sample_seconds: float,
    streams: int = 4,
    rate: float = OFFERED_RATE,
) -> dict:
    path = f"{directory}/soak.db"
    speed = MONTH_SECONDS / month_wall_seconds
    clock = FastClock(SIM_START, time.time(), speed)
    service = ServiceProcess(
        f"sqlite:///{path}", **_settings(month_wall_seconds), **{SPEC_ENV: clock.spec()}
    )
    service.command = [sys.executable, "-m", "benchmarks.fastclock"]
    service.start(timeout=60)
    print(f"[soak] service log: {service.output_path}", flush=True)
    probe: LatencyProbe | None = None
    peaks: PeakWatch | None = None
    credits: CreditIssuer | None = None
    producer: subprocess.Popen | None = None
    receiver = Receiver()
    try:
        made = create_accounts(service.target, accounts, TENANTS, PARTNERS)
        setup = Client(service.target)
        for account in made:
            setup.billing.CreateWebhookEndpoint(
                pb.CreateWebhookEndpointRequest(account_id=account.account_id, url=receiver.url),
                metadata=auth("admin"),
            )
        setup.close()
        accounts_file = f"{directory}/accounts.json"
        with open(accounts_file, "w") as handle:
            json.dump([account.as_json() for account in made], handle)
        sampler = Sampler(path)
        peaks = PeakWatch(sampler)
        peaks.start()
        producer = subprocess.Popen(
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
                "uuid4",
                "--seed",
                "5",
                "--streams",
                str(streams),
                "--seconds",
                str(minutes * 60),
                "--fast-clock",
                clock.spec(),
                "--in-flight",
                "2",
                "--rate",
                str(rate),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        watch = ProducerWatch(producer)
        watch.start()
        probe = LatencyProbe(service.target, [account.account_id for account in made])
        probe.start()
        credits = CreditIssuer(service.target, [account.account_id for account in made])
        credits.start()
        started = time.time()
        samples = []
        previous = started
        while time.time() - started < minutes * 60:
            time.sleep(max(0.0, previous + sample_seconds - time.time()))
            now = time.time()
            counts = sampler.counts()
            database_mib, wal_mib = sampler.sizes_mib()
            samples.append(
                {
                    "seconds": now - started,
                    "clock": clock.now(),
                    "counts": counts,
                    "peaks": peaks.take(counts),
                    "database_mib": database_mib,
                    "wal_mib": wal_mib,
                    "rate": watch.rate(previous, now),
                    "p99_ms": probe.p99(previous, now),
                    "load": os.getloadavg()[0],
                }
            )
            previous = now
            print(
                f"[soak] {now - started:5.0f} s, clock {clock.now():%Y-%m-%d}: "
                f"{counts.get('usage_event', 0):,} events stored, "
                f"{database_mib + wal_mib:,.0f} MiB, {samples[-1]['rate']:,.0f} events/s, "
                f"p99 {samples[-1]['p99_ms'] or 0:.1f} ms",
                flush=True,
            )
        producer.wait(120)
        watch.join(10)
        minute_rates, minute_p99 = [], []
        for minute in range(int(minutes)):
            start, end = started + 60 * minute, started + 60 * (minute + 1)
            minute_rates.append(watch.rate(start, end))
            minute_p99.append(probe.p99(start, end) or 0.0)
        return {
            "samples": samples,
            "minute_rates": minute_rates,
            "minute_p99": minute_p99,
            "final": watch.final,
            "speed": speed,
            "accounts": accounts,
            "rate": rate,
            "probe_errors": probe.errors,
            "credits": credits.issued,
            "credit_errors": credits.errors,
            "webhooks_received": len(receiver.received()),
            "purge_runs": purge_runs(service.output()),
        }
    finally:
        if peaks is not None:
            peaks.stop.set()
            peaks.join(35)
        if credits is not None:
            credits.stop.set()
            credits.join(35)
        if probe is not None:
            probe.stop.set()
            probe.join(35)
        if producer is not None and producer.poll() is None:
            producer.kill()
        service.kill()
        receiver.close()


def _report(result: dict, minutes: float, month_wall_seconds: float, sample_seconds: float) -> str:
    samples = result["samples"]
    lines = [
        f"## Soak: steady ingestion while time moves on and retention purges\n\n"
        f"Machine: {describe()}. **Shared with other work** (load average beside each "
        "sample, 2 cores).\n",
        f"{minutes:g} minutes of `billing-svc serve` on a fast clock (a 30-day month every "
        f"{month_wall_seconds:g} s of wall time, {result['speed']:,.0f}× the wall; every part "
        "of the service on that time), usage retention 5 days and every other "
        "`BILLING_*_RETENTION_DAYS` at 1, the scheduler purging at each tick (every wall "
        "second); the period closer invoices each "
        f"month. {result['accounts']} accounts of {TENANTS} tenants and {PARTNERS} partners, "
        "each with a webhook endpoint (a local receiver answering 200); "
        "a separate producer process streams UUIDv4 events "
        + (
            f"at a steady {result['rate']:,.0f} events/s offered"
            if result["rate"]
            else "as fast as the service takes them"
        )
        + " (4 streams, batches of 1,000, at most 2 unacknowledged per stream, each "
        "stamped a clock second before it is sent); GetCurrentUsage is called about 50 times "
        f"a second on random accounts, and IssueCredit (a cent, with a request_id) "
        f"{CREDITS_PER_SECOND} times a second. Sampled every {sample_seconds:g} s (every "
        f"{TABLE_EVERY}rd sample shown). `./dev bench soak [--minutes N]`, "
        "`benchmarks/soak.py`.\n",
        "The fast clock packs the work of a clock hour into "
        f"{3600 / result['speed'] * 1000:,.0f} ms of wall time: per hour of the clock the "
        "service does what production does in the same hour (hourly roll-ups and reports per "
        "account, webhook events, the purge's month per account), but the events of that hour "
        f"arrive {result['speed']:,.0f}× as densely: each month holds what ingestion takes in "
        f"{month_wall_seconds:g} s, and the purge must delete a month's events (every "
        "account's) within about the next month, at the rate they came in.\n",
        "| wall | clock | "
        + " | ".join(f"`{t}`" for t in SHOWN_TABLES)
        + " | database + WAL | events/s | GetCurrentUsage p99 | load |",
        "|---" * (len(SHOWN_TABLES) + 6) + "|",
    ]
    for n, sample in enumerate(samples):
        if n % TABLE_EVERY != TABLE_EVERY - 1 and n != len(samples) - 1:
            continue
        counts = sample["counts"]
        p99 = f"{sample['p99_ms']:.1f} ms" if sample["p99_ms"] is not None else "-"
        lines.append(
            f"| {sample['seconds']:.0f} s | {sample['clock']:%Y-%m-%d} | "
            + " | ".join(f"{counts.get(t, 0):,}" for t in SHOWN_TABLES)
            + f" | {sample['database_mib']:,.0f} + {sample['wal_mib']:,.0f} MiB "
            f"| {sample['rate']:,.0f} | {p99} | {sample['load']:.1f} |"
        )
    verdicts = []
    tables = sorted({t for sample in samples for t in sample["counts"]} - {"events purged"})
    for table in tables:
        series = [float(sample.get("peaks", sample["counts"]).get(table, 0)) for sample in samples]
        level, ratio = _levels_off(series, LEVEL_SLACK_ROWS)
        if table in PURGED_TABLES or not level:
            if not max(series):
                verdict = "**stays empty** (the soak does not exercise it)"
            elif level:
                verdict = "levels off"
            elif table in KEPT_TABLES:
                verdict = "grows (per account and month, kept by design)"
            else:
                verdict = "**grows**"
            verdicts.append(f"`{table}` {verdict} ({ratio:.2f}×, peak {max(series):,.0f})")
    # The file alone: the WAL file only ever shrinks back to its limit (the checkpointer's
    # journal_size_limit, 64 MiB) and grows towards it as long as it is under it, a bound by
    # design (storage/checkpoint.py), not a sign of rows kept.
    size_level, size_ratio = _levels_off([s["database_mib"] for s in samples])
    wal_peak = max(s["wal_mib"] for s in samples)
    rates, p99s = result["minute_rates"], result["minute_p99"]
    if len(rates) < 2 or not min(rates[1:]) or not p99s[0]:
        raise SystemExit("the soak needs two minutes or more, with events and calls in each")
    rate_worst = rates[0] / min(rates[1:])
    p99_worst = max(p99s[1:]) / p99s[0]
    final = result["final"]
    last = samples[-1]["counts"]
    lines += [
        "",
        "Per minute: events/s "
        + ", ".join(f"{r:,.0f}" for r in rates)
        + "; GetCurrentUsage p99 "
        + ", ".join(f"{p:.1f}" for p in p99s)
        + " ms.",
        "",
        f"- **Tables** (peak of the last third against the middle third, "
        f"≤ {LEVEL_TOLERANCE:.2f}× levels off): " + "; ".join(verdicts) + ".",
        f"- **Database file {'levels off' if size_level else 'grows'}** ({size_ratio:.2f}×, "
        f"peak {max(s['database_mib'] for s in samples):,.0f} MiB); the WAL peaked at "
        f"{wal_peak:,.0f} MiB (bounded: cut back to "
        f"{DEFAULT_WAL_LIMIT_BYTES / (1 << 20):,.0f} MiB when it starts over).",
        f"- **Ingestion {'holds' if rate_worst <= HOLD_TOLERANCE else 'does not hold'}**: the "
        f"first minute's rate is {rate_worst:.2f}× the slowest later minute's (goal ≤ 1.3×)"
        + (
            f"; {result['rate']:,.0f} events/s offered, the slowest minute took {min(rates):,.0f}."
            if result.get("rate")
            else "."
        ),
        f"- **GetCurrentUsage p99 {'holds' if p99_worst <= HOLD_TOLERANCE else 'does not hold'}**"
        f": the worst later minute is {p99_worst:.2f}× the first (goal ≤ 1.3×).",
        f"- Events: {final.get('accepted', 0):,} accepted, {final.get('duplicates', 0):,} "
        f"duplicates, {final.get('rejected', 0):,} rejected; GetCurrentUsage errors: "
        f"{len(result['probe_errors'])}"
        + (f" (first: {result['probe_errors'][0]})" if result["probe_errors"] else "")
        + ".",
        f"- Purged by the end: {last.get('events purged', 0):,} raw events "
        f"({last.get('usage_purged_period', 0):,} account-months); "
        f"{result.get('credits', 0):,} credits issued "
        f"({len(result.get('credit_errors', [])):,} errors), "
        f"{result.get('webhooks_received', 0):,} webhooks received.",
    ]
    runs = result.get("purge_runs", [])
    if runs:
        longest = sorted(float(run["longest_chunk_ms"]) for run in runs)
        largest = max(int(run.get("largest_usage_chunk", 0)) for run in runs)
        chunks = sum(int(run.get("chunks", 0)) for run in runs)
        waited = sum(float(run.get("lock_wait_ms", 0)) for run in runs)
        lines.append(
            f"- Purge: {len(runs):,} scheduled runs deleted something "
            f"({sum(1 for run in runs if not run['complete']):,} stopped at their budget, "
            "every part having had its turn), "
            f"{sum(int(run['usage_events']) for run in runs):,} raw events in {chunks:,} chunks "
            f"(the largest of raw events {largest:,}"
            " rows); the longest chunk of each run held the write lock "
            f"{longest[len(longest) // 2]:.0f} ms (median of the runs), "
            f"{longest[int(len(longest) * 0.9)]:.0f} ms (9 runs in 10), {longest[-1]:.0f} ms at "
            f"most (goal ~50 ms); chunks waited {waited / max(chunks, 1):.0f} ms each on average "
            "for the write lock (ingestion's groups)."
        )
        lines += ["", *chunk_hold_table(runs)]
    return "\n".join(lines)


# The kinds of purge chunk, in the order of a run (services.retention: "bookkeeping" is the
# horizon and the periods' starts and ends, a commit and little else).
CHUNK_KINDS = (
    "bookkeeping",
    "usage",
    "webhook_log",
    "idempotency",
    "hourly_rollups",
    "usage_reports",
)


def chunk_hold_table(runs: list[dict]) -> list[str]:
    """How long the purge's chunks held SQLite's write lock, by kind, over the scheduled runs
    (each run logs its own p50/p99/max per kind: ``chunk_holds``)."""
    by_kind: dict[str, list[dict]] = {}
    for run in runs:
        for kind, holds in run.get("chunk_holds", {}).items():
            by_kind.setdefault(kind, []).append(holds)
    if not by_kind:
        return []
    lines = [
        "Purge chunks, by kind: how long each held SQLite's write lock (from `BEGIN IMMEDIATE` "
        "to the end of its commit; each scheduled run logs its p50, p99 and max per kind).",
        "",
        "| chunks of | runs | chunks | over 50 ms | p50, median of the runs | p99, median of "
        "the runs | p99, worst run | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    known = [kind for kind in CHUNK_KINDS if kind in by_kind]
    for kind in known + sorted(set(by_kind) - set(known)):
        holds = by_kind[kind]
        p50s = sorted(float(h["p50_ms"]) for h in holds)
        p99s = sorted(float(h["p99_ms"]) for h in holds)
        lines.append(
            f"| {kind} | {len(holds):,} | {sum(int(h['chunks']) for h in holds):,} | "
            f"{sum(int(h['over_bound']) for h in holds):,} | {p50s[len(p50s) // 2]:.1f} ms | "
            f"{p99s[len(p99s) // 2]:.1f} ms | {p99s[-1]:.1f} ms | "
            f"{max(float(h['max_ms']) for h in holds):.1f} ms |"
        )
    return lines


def main(quick: bool = False, minutes: float | None = None, rate: float | None = None) -> str:
    minutes = minutes or (3.0 if quick else 10.0)
    month_wall_seconds = 40.0 if quick else 120.0
    accounts = 20 if quick else 100
    sample_seconds = 10.0
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as directory:
        result = soak(
            directory,
            minutes,
            month_wall_seconds,
            accounts,
            sample_seconds,
            rate=OFFERED_RATE if rate is None else rate,
        )
    if os.environ.get("BENCH_SOAK_JSON"):  # the run's samples and purge log, to study
        with open(os.environ["BENCH_SOAK_JSON"], "w") as handle:
            json.dump(result, handle, default=str)
    body = _report(result, minutes, month_wall_seconds, sample_seconds)
    write_section("soak", body)
    return body


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
