"""Prometheus metrics, served in the text format on their own port (``BILLING_METRICS_LISTEN``).

Counters and histograms are updated where things happen (the RPC interceptor, the ingestion
writer, the closer); gauges that describe the database (outbox depth and age) are read by a
collector at scrape time, so they are right whichever replica did the work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from billing_svc.storage.db import Database
from billing_svc.storage.tables import OutboxEvent

RPCS = Counter("billing_rpc_total", "RPCs served, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "billing_rpc_duration_seconds",
    "RPC latency",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
USAGE_EVENTS = Counter("billing_usage_events_total", "Usage events by outcome", ["outcome"])
BATCH_COMMIT_SECONDS = Histogram(
    "billing_usage_group_commit_seconds",
    "Time to store and commit one group of usage batches",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCHES_PER_COMMIT = Histogram(
    "billing_usage_batches_per_commit",
    "Batches stored by one commit (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
INVOICES_CLOSED = Counter("billing_invoices_closed_total", "Invoices issued by period closing")
WEBHOOK_ATTEMPTS = Counter(
    "billing_webhook_attempts_total", "Webhook delivery attempts", ["outcome"]
)


class OutboxCollector(Collector):
    """Outbox depth and the age of its oldest pending event, read from the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily(
            "billing_outbox_pending_events", "Outbox events not yet fanned out to endpoints"
        )
        age = GaugeMetricFamily(
            "billing_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox event not yet fanned out",
        )
        try:
            with self.db.read() as session:
                count, oldest = session.exec(
                    select(func.count(), func.min(OutboxEvent.created_at)).where(
                        col(OutboxEvent.fanned_out).is_(False)
                    )
                ).one()
        except Exception:  # a scrape must not fail because the database is away
            return
        depth.add_metric([], float(count))
        if oldest is not None:
            age.add_metric([], max((self.db.clock.now() - oldest).total_seconds(), 0.0))
        else:
            age.add_metric([], 0.0)
        yield depth
        yield age


_collectors: list[OutboxCollector] = []


def serve_metrics(address: str, db: Database) -> int:
    """Start the metrics HTTP server on ``host:port``; returns the port it bound."""
    for collector in _collectors:
        REGISTRY.unregister(collector)
    _collectors.clear()
    collector = OutboxCollector(db)
    REGISTRY.register(collector)
    _collectors.append(collector)
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    return int(server.server_address[1])


def observe_rpc(method: str, code: str, started: float) -> None:
    RPCS.labels(method, code).inc()
    RPC_SECONDS.labels(method).observe(time.perf_counter() - started)
