"""Webhook delivery: throughput to local receivers against a bare HTTP client's to the same
receivers, and latency to healthy endpoints while 20 % of the endpoints never answer, against
the same run with every endpoint healthy.

    ./dev bench webhooks [--quick]     (PostgreSQL too when BILLING_TEST_DATABASE_URL is set)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from benchmarks.machine import describe
from benchmarks.report import write_section
from billing_svc.domain import events
from billing_svc.services import accounts, webhooks
from billing_svc.services.context import Caller, RequestContext
from billing_svc.settings import Settings
from billing_svc.storage import outbox
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.webhooks.dispatcher import Dispatcher
from tests.support import DeadEndpoint, fresh_database

ROOT = Path(__file__).resolve().parent.parent
ADMIN = RequestContext(Caller("bench", frozenset({"admin"})))
ENDPOINTS = 10
PER_ENDPOINT = 4  # the default webhook_per_endpoint_concurrency


class Receivers:
    """Healthy endpoints served by ``benchmarks.receivers`` in another process; each request
    appends "<receipt time> <event timestamp>" to a log."""

    def __init__(self, count: int, directory: str) -> None:
        self.log = Path(directory) / f"receipts-{time.monotonic_ns()}.log"
        self.log.touch()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.receivers", str(count), str(self.log)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ports = json.loads(self.process.stdout.readline())
        self.urls = [f"http://127.0.0.1:{port}/hooks" for port in ports]

    def count(self) -> int:
        """Requests received so far (cheap: the benchmark polls it while the dispatcher runs
        in the same process)."""
        return self.log.read_bytes().count(b"\n")

    def receipts(self) -> list[tuple[float, str]]:
        lines = self.log.read_text().splitlines()
        return [(float(a), b) for a, b in (line.split(" ", 1) for line in lines if " " in line)]

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"receivers got {self.count()} requests, expected {count}")
            time.sleep(0.1)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


class Bench:
    """A database with one account and endpoint per receiver, the service's own dispatcher."""

    def __init__(self, database_url: str, directory: str, dead: int) -> None:
        self.db = Database(database_url)
        upgrade(self.db)
        self.settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=database_url,
            webhook_allow_private_networks=True,
            webhook_dispatch_interval_seconds=0.05,
            webhook_per_endpoint_concurrency=PER_ENDPOINT,
        )
        self.receivers = Receivers(ENDPOINTS - dead, directory)
        self.dead = [DeadEndpoint() for _ in range(dead)]
        self.accounts = []
        for index, url in enumerate(self.receivers.urls + [d.url for d in self.dead]):
            account = accounts.create_account(
                self.db,
                ADMIN,
                name=f"Hooks {index}",
                plan_id="startup",
                billing_interval="monthly",
                skip_trial=True,
                start_time=None,
                usage_thresholds=(),
                key=None,
            )
            webhooks.create_endpoint(
                self.db,
                ADMIN,
                account_id=account.account_id,
                url=url,
                event_types=[],
                description="",
                allow_private=True,
                key=None,
            )
            self.accounts.append(account.account_id)
        self.dispatcher = Dispatcher(self.db, self.settings)

    def emit(self, count: int) -> None:
        """``count`` events spread over the accounts, in transactions of 50."""
        for start in range(0, count, 50):
            with self.db.write() as session:
                for i in range(start, min(start + 50, count)):
                    outbox.enqueue(
                        session,
                        events.limit_exceeded(
                            account_id=self.accounts[i % len(self.accounts)],
                            limit_type="tenants",
                            current_usage=i,
                            plan_limit=3,
                            period="2026-11",
                            refused=False,
                            occurred_at=datetime.now(UTC),
                        ),
                    )

    def close(self) -> None:
        asyncio.run(self.dispatcher.stop())
        self.receivers.close()
        for dead in self.dead:
            dead.close()
        self.db.dispose()


def throughput(database_url: str, directory: str, count: int) -> float:
    """Deliveries/s of a backlog of ``count`` events: from the dispatcher's start to the last
    receipt."""
    bench = Bench(database_url, directory, dead=0)
    try:
        bench.emit(count)
        started = time.time()
        bench.dispatcher.start()
        bench.receivers.wait_for(count, timeout=120)
        return count / (max(received for received, _ in bench.receivers.receipts()) - started)
    finally:
        bench.close()


def bare_client(directory: str, count: int) -> float:
    """The baseline: a plain aiohttp session (the dispatcher's HTTP library) posting the same
    small JSON body to the same receivers with the same concurrency, no database, no signing,
    no URL guard."""
    receivers = Receivers(ENDPOINTS, directory)
    body = (
        events.limit_exceeded(
            account_id="acc_bench",
            limit_type="tenants",
            current_usage=1,
            plan_limit=3,
            period="2026-11",
            refused=False,
            occurred_at=datetime.now(UTC),
        )
        .body()
        .encode()
    )

    async def post_all() -> None:
        connector = aiohttp.TCPConnector(limit=ENDPOINTS * PER_ENDPOINT)
        async with aiohttp.ClientSession(connector=connector) as client:

            async def worker(url: str, n: int) -> None:
                for _ in range(n):
                    async with client.post(url, data=body) as response:
                        response.raise_for_status()
                        await response.read()

            await asyncio.gather(
                *(
                    worker(url, count // len(receivers.urls) // PER_ENDPOINT)
                    for url in receivers.urls
                    for _ in range(PER_ENDPOINT)
                )
            )

    try:
        started = time.time()
        asyncio.run(post_all())
        sent = count // len(receivers.urls) // PER_ENDPOINT * len(receivers.urls) * PER_ENDPOINT
        receivers.wait_for(sent, timeout=60)
        return sent / (max(received for received, _ in receivers.receipts()) - started)
    finally:
        receivers.close()


def latency(
    database_url: str, directory: str, dead: int, seconds: float, rate: int
) -> tuple[float, float]:
    """(p50, p99) seconds from an event's commit to its receipt at a healthy endpoint, with
    ``rate`` events/s spread over all endpoints, ``dead`` of which never answer."""
    bench = Bench(database_url, directory, dead=dead)
    emitted = 0
    try:
        bench.dispatcher.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            bench.emit(rate // 10)
            emitted += rate // 10
            time.sleep(0.1)
        bench.receivers.wait_for(emitted * (ENDPOINTS - dead) // ENDPOINTS, timeout=30)
        latencies = sorted(
            received - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            for received, stamp in bench.receivers.receipts()
        )
        return (latencies[len(latencies) // 2], latencies[max(int(len(latencies) * 0.99) - 1, 0)])
    finally:
        bench.close()


def main(quick: bool = False) -> str:
    count = 2000 if quick else 5000
    seconds = 8 if quick else 15
    with tempfile.TemporaryDirectory() as directory:
        baseline = bare_client(directory, count)
        rates = [("SQLite", throughput(f"sqlite:///{directory}/throughput.db", directory, count))]
        if os.environ.get("BILLING_TEST_DATABASE_URL"):
            with fresh_database(directory) as url:
                rates.append(("PostgreSQL", throughput(url, directory, count)))
        healthy = latency(
            f"sqlite:///{directory}/healthy.db", directory, dead=0, seconds=seconds, rate=100
        )
        degraded = latency(
            f"sqlite:///{directory}/degraded.db", directory, dead=2, seconds=seconds, rate=100
        )
    lines = [
        "## Webhook delivery",
        "",
        f"Machine: {describe()}",
        "",
        f"Receivers: {ENDPOINTS} real HTTP/1.1 servers on 127.0.0.1 in their own process (one "
        "asyncio loop, keep-alive: lean, so that they leave the dispatcher most of the two "
        "cores), one endpoint each. The dispatcher is the service's own (its "
        f"own thread and event loop, {PER_ENDPOINT} requests in flight per endpoint, polling "
        "every 50 ms when idle); each delivery is signed, leased, POSTed and recorded. "
        "Latency is from the event's commit to its receipt.",
        "",
        "| what | figure | goal |",
        "|---|---|---|",
        f"| a plain aiohttp session, same body, receivers and concurrency (baseline) | "
        f"{baseline:,.0f} requests/s | |",
    ]
    lines += [
        f"| deliveries/s, a backlog of {count:,} events to {ENDPOINTS} endpoints, {name} "
        f"| {rate:,.0f} ({rate / baseline:.2f}× the bare client) | ≥ 1,000 |"
        for name, rate in rates
    ]
    lines += [
        f"| latency, 100 events/s, all {ENDPOINTS} endpoints healthy (baseline) | p50 "
        f"{healthy[0] * 1000:.0f} ms, p99 {healthy[1] * 1000:.0f} ms | |",
        f"| latency to the healthy ones, 2 of {ENDPOINTS} endpoints never answer | p50 "
        f"{degraded[0] * 1000:.0f} ms, p99 {degraded[1] * 1000:.0f} ms "
        f"({degraded[1] / healthy[1]:.2f}× the p99) | p99 ≤ 1.5× |",
    ]
    body = "\n".join(lines)
    write_section("webhooks", body)
    return body
