"""Webhook delivery: throughput to local receivers, and latency to healthy endpoints while 20 %
of the endpoints never answer, against the same run with every endpoint healthy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

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
from tests.support import DeadEndpoint

ROOT = Path(__file__).resolve().parent.parent


class Receivers:
    """Healthy endpoints served by ``benchmarks.receivers`` in another process."""

    def __init__(self, count: int, directory: str) -> None:
        self.log = Path(directory) / f"receipts-{time.monotonic_ns()}.log"
        self.log.touch()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.receivers", str(count), str(self.log)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ports = json.loads(self.process.stdout.readline())
        self.urls = [f"http://127.0.0.1:{port}/hooks" for port in ports]

    def receipts(self) -> list[tuple[float, str]]:
        lines = self.log.read_text().splitlines()
        return [(float(a), b) for a, b in (line.split(" ", 1) for line in lines if " " in line)]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)

ADMIN = RequestContext(Caller("bench", frozenset({"admin"})))


class Bench:
    def __init__(self, directory: str, endpoints: int, dead: int) -> None:
        self.db = Database(f"sqlite:///{directory}/hooks-{endpoints}-{dead}.db")
        upgrade(self.db)
        self.settings = Settings(_env_file=None, webhook_allow_private_networks=True,  # type: ignore[call-arg]
                                 webhook_dispatch_interval_seconds=0.05)
        self.receivers = Receivers(endpoints - dead, directory)
        self.dead = [DeadEndpoint() for _ in range(dead)]
        self.accounts = []
        for index, url in enumerate(self.receivers.urls + [d.url for d in self.dead]):
            account = accounts.create_account(
                self.db, ADMIN, name=f"Hooks {index}", plan_id="startup",
                billing_interval="monthly", skip_trial=True, start_time=None,
                usage_thresholds=(), key=None)
            webhooks.create_endpoint(self.db, ADMIN, account_id=account.account_id, url=url,
                                     event_types=[], description="", allow_private=True,
                                     key=None)
            self.accounts.append(account.account_id)

    def emit(self, count: int) -> None:
        """``count`` events spread over the accounts, in transactions of 50."""
        for start in range(0, count, 50):
            with self.db.write() as session:
                for i in range(start, min(start + 50, count)):
                    account_id = self.accounts[i % len(self.accounts)]
                    outbox.enqueue(session, events.limit_exceeded(
                        account_id=account_id, limit_type="tenants", current_usage=i,
                        plan_limit=3, period="2026-11", refused=False,
                        occurred_at=datetime.now(UTC)))

    def healthy_received(self) -> int:
        return len(self.receivers.receipts())

    def start(self) -> None:
        self.stop_event: asyncio.Event | None = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main() -> None:
            self.stop_event = asyncio.Event()
            ready.set()
            await Dispatcher(self.db, self.settings).run(self.stop_event)

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()))
        self.thread.start()
        ready.wait()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)  # type: ignore[union-attr]
        self.thread.join(30)
        self.receivers.close()
        for dead in self.dead:
            dead.close()
        self.db.dispose()


def throughput(directory: str, count: int) -> float:
    bench = Bench(directory, endpoints=10, dead=0)
    bench.emit(count)
    try:
        started = time.perf_counter()
        bench.start()
        while bench.healthy_received() < count:
            time.sleep(0.01)
        return count / (time.perf_counter() - started)
    finally:
        bench.close()


def latency_p99(directory: str, dead: int, seconds: float, rate: int) -> float:
    """p99 seconds from an event's commit to its receipt at a healthy endpoint."""
    bench = Bench(directory, endpoints=10, dead=dead)
    sent: list[float] = []
    try:
        bench.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            bench.emit(rate // 10)
            sent.append(time.time())
            time.sleep(0.1)
        expected = len(sent) * (rate // 10) * (10 - dead) // 10
        wait_until = time.monotonic() + 30
        while bench.healthy_received() < expected and time.monotonic() < wait_until:
            time.sleep(0.05)
        latencies = []
        for received, stamp in bench.receivers.receipts():
            occurred = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            latencies.append(received - occurred.timestamp())
        latencies.sort()
        return latencies[int(len(latencies) * 0.99) - 1]
    finally:
        bench.close()


def main(quick: bool = False) -> str:
    count = 1000 if quick else 5000
    with tempfile.TemporaryDirectory() as directory:
        rate = throughput(directory, count)
        healthy = latency_p99(directory, dead=0, seconds=8 if quick else 15, rate=100)
        degraded = latency_p99(directory, dead=2, seconds=8 if quick else 15, rate=100)
    body = "\n".join([
        "## Webhook delivery", "", f"Machine: {describe()}", "",
        "Receivers are real HTTP/1.1 servers on 127.0.0.1 in their own process (one thread per "
        "connection); the dispatcher is the service's own, on SQLite, polling every 50 ms; "
        "latency is from the event's commit to its receipt.", "",
        "| what | figure | goal |", "|---|---|---|",
        f"| deliveries/s, {count:,} events to 10 endpoints | {rate:,.0f} | ≥ 1,000 |",
        f"| p99 latency, 100 events/s, all 10 endpoints healthy (baseline) | "
        f"{healthy * 1000:.0f} ms | |",
        f"| p99 latency to the healthy ones, 2 of 10 endpoints never answer | "
        f"{degraded * 1000:.0f} ms ({degraded / healthy:.2f}×) | ≤ 1.5× |",
    ])
    write_section("webhooks", body)
    return body
