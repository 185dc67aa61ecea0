"""The composition root: one running billing-svc, built from its settings.

Here, and only here, the parts meet: the ``Database`` (migrated before anything serves), the
clock, the tracer, the use cases' long-lived helpers (test clocks, the ingestion writer), the
servicers of both ports, the token store, the webhook dispatcher and the scheduler. ``api/``
holds what is gRPC or HTTP (``api/server.py``, ``api/rest.py``) and is handed what it serves;
``cli.py`` and the tests start the service through ``BillingServer`` or open a database through
``open_database``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from grpc_health.v1 import health_pb2

from billing_svc import native, scheduler, tracing
from billing_svc.api import usage
from billing_svc.api.auth import load_token_store
from billing_svc.api.billing import BillingServicer
from billing_svc.api.rest import RestServer
from billing_svc.api.server import GrpcServer, os_reason
from billing_svc.clock import SYSTEM_CLOCK, Clock
from billing_svc.metrics import serve_metrics
from billing_svc.operator_errors import ListenError
from billing_svc.services.ingestion_writer import IngestionWriter
from billing_svc.services.test_clocks import AccountClocks
from billing_svc.settings import Settings
from billing_svc.storage import partitions
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.webhooks.dispatcher import Dispatcher

if TYPE_CHECKING:  # the SDK is imported only when an exporter is chosen
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger("billing_svc.server")


def open_database(
    settings: Settings, *, background_checkpoints: bool = False, clock: Clock = SYSTEM_CLOCK
) -> Database:
    """The settings' database, its schema brought up to date: what an operator's command
    works on."""
    db = Database(settings.database_url, background_checkpoints=background_checkpoints, clock=clock)
    upgrade(db, settings=settings)
    return db


class BillingServer:
    """One running billing-svc: ``start`` binds, migrates and serves; ``stop`` drains. ``clock``
    is the one source of "now" for everything it runs (tests give a fixed one)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = SYSTEM_CLOCK,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """``tracer_provider``: report spans there whatever ``BILLING_OTEL_EXPORTER`` says (the
        tests record them in memory); the caller keeps it and shuts it down."""
        self.settings = settings
        self.db = Database(settings.database_url, background_checkpoints=True, clock=clock)
        self.port = 0
        self.metrics_port = 0
        self.http_port = 0
        self._rest: RestServer | None = None
        self.tracing = tracing.configure(settings, tracer_provider)
        self._grpc = GrpcServer(settings, self.tracing.tracer)
        self._stop_jobs = asyncio.Event()
        self._jobs: asyncio.Task[None] | None = None
        self._dispatch: asyncio.Task[None] | None = None
        self._tokens_current: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.settings
        billing = BillingServicer(
            self.db,
            dunning_days=settings.dunning_days,
            gl_account=settings.gl_account,
            allow_private_networks=settings.webhook_allow_private_networks,
            change_request_ttl=timedelta(hours=settings.change_request_ttl_hours),
        )
        self._clocks = AccountClocks(self.db)
        self._writer = IngestionWriter(
            self.db,
            retention_days=settings.usage_retention_days,
            tracer=self.tracing.tracer,
            clocks=self._clocks,
        )
        codec, unavailable = native.codec(settings.native_ingestion)
        # Off is a warning: the service is correct without it, but several times slower on SQLite.
        (log.info if not unavailable else log.warning)(
            "ingestion_kernel", active=not unavailable, codec=codec.name, reason=unavailable or None
        )
        self.port = await self._grpc.build(
            billing,
            usage.UsageServicer(
                self.db, self._writer, stream_idle_seconds=settings.stream_idle_seconds
            ),
            codec,
        )
        if settings.metrics_listen:
            try:
                self.metrics_port = serve_metrics(settings.metrics_listen, self.db)
            except (OSError, ValueError) as exc:
                raise ListenError(
                    f"cannot listen on {settings.metrics_listen} "
                    f"(BILLING_METRICS_LISTEN): {os_reason(exc)}"
                ) from None
            log.info("metrics", address=settings.metrics_listen, port=self.metrics_port)
        # Bound before gRPC serves: a port in use stops the start before any call is answered.
        if settings.http_listen:
            self._rest = RestServer(self.db, settings)
            self.http_port = await self._rest.start()
            log.info(
                "http_listening",
                address=settings.http_listen,
                port=self.http_port,
                tls=bool(settings.tls_cert_file),
            )
        await self._grpc.start()
        host = settings.listen.rsplit(":", 1)[0]
        log.info("listening", address=f"{host}:{self.port}")

        await asyncio.to_thread(upgrade, self.db, settings=settings)
        await asyncio.to_thread(partitions.ensure_ahead, self.db)  # PostgreSQL's raw usage
        if self.db.usage_index is not None:  # SQLite: the raw usage log's dedupe index
            started = time.monotonic()
            events = await asyncio.to_thread(self.db.warm_usage_index)
            log.info(
                "usage_index_built",
                events=events,
                seconds=round(time.monotonic() - started, 3),
                bytes=self.db.usage_index.table.bytes,
            )
        tokens = await asyncio.to_thread(load_token_store, settings, self.db)
        self._grpc.interceptor.activate(tokens, self._clocks)
        if self._rest is not None:
            self._rest.activate(tokens, self._clocks)
        self._tokens_current = asyncio.create_task(tokens.keep_current(self._stop_jobs))
        self._writer.start()
        self._dispatcher = Dispatcher(self.db, settings, self.tracing.tracer)
        self._dispatch = asyncio.create_task(self._dispatcher.run(self._stop_jobs))
        await self._grpc.set_health(health_pb2.HealthCheckResponse.SERVING)
        self._jobs = asyncio.create_task(
            scheduler.run_forever(self.db, settings, self._stop_jobs, self.tracing.tracer)
        )
        log.info("serving", database=self.db.url.render_as_string(hide_password=True))

    async def abandon(self) -> None:
        """Undo a ``start`` that failed part way: close the port and the database."""
        await self._grpc.stop(0)
        self.db.dispose()

    async def stop(self) -> None:
        """Refuse new calls, let in-flight ones finish within the grace period, release the DB."""
        grace = self.settings.shutdown_grace_seconds
        log.info("draining", grace_seconds=grace)
        await self._grpc.enter_graceful_shutdown()
        self._stop_jobs.set()
        # Both ports drain at once, within the one grace period.
        await asyncio.gather(
            self._grpc.stop(grace), *([self._rest.stop()] if self._rest is not None else [])
        )
        await self._writer.stop()
        if self._jobs is not None:
            await self._jobs
        if self._dispatch is not None:
            await self._dispatch
        if self._tokens_current is not None:
            await self._tokens_current
        self.db.dispose()
        await asyncio.to_thread(self.tracing.shutdown)  # exports the spans still buffered
        log.info("stopped")


async def serve(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return (``clock``: the soak benchmark's
    fast one; the service's own is the system clock)."""
    server = BillingServer(settings, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except BaseException:
        await server.abandon()
        raise
    await stop.wait()
    await server.stop()
