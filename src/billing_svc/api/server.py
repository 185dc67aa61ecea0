"""The gRPC server: servicers, health (SERVING once migrated), reflection, traces, graceful
SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import structlog
from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from billing_svc import native, scheduler, tracing
from billing_svc.api import reflection, usage
from billing_svc.api.auth import load_token_store
from billing_svc.api.billing import BillingServicer
from billing_svc.api.interceptor import ServiceInterceptor
from billing_svc.api.rest import RestServer
from billing_svc.clock import SYSTEM_CLOCK, Clock
from billing_svc.metrics import serve_metrics
from billing_svc.operator_errors import ListenError
from billing_svc.services.group_commit import IngestionWriter
from billing_svc.services.test_clocks import AccountClocks
from billing_svc.settings import Settings
from billing_svc.storage import partitions
from billing_svc.storage.db import Database
from billing_svc.storage.migrate import upgrade
from billing_svc.webhooks.dispatcher import Dispatcher

if TYPE_CHECKING:  # the SDK is imported only when an exporter is chosen
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger("billing_svc.server")

SERVICE_NAMES = (
    billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
    usage_service_pb2.DESCRIPTOR.services_by_name["UsageService"].full_name,
)
# What a stream may send before the server reads it: 1 MiB keeps a stream at ~100 MB/s over a
# 10 ms round trip.
STREAM_WINDOW_BYTES = 1024 * 1024


class BillingServer:
    """One running billing-svc: ``start`` binds, migrates and serves; ``stop`` drains. ``clock``
    is the one source of "now" for everything it runs (tests give a fixed one)."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK, *,
                 tracer_provider: TracerProvider | None = None) -> None:
        """``tracer_provider``: report spans there whatever ``BILLING_OTEL_EXPORTER`` says (the
        tests record them in memory); the caller keeps it and shuts it down."""
        self.settings = settings
        self.db = Database(settings.database_url, background_checkpoints=True, clock=clock)
        self.port = 0
        self.metrics_port = 0
        self.http_port = 0
        self._rest: RestServer | None = None
        self.tracing = tracing.configure(settings, tracer_provider)
        self._interceptor = ServiceInterceptor(
            settings.max_streams_per_caller, max_request_bytes=settings.max_request_bytes,
            max_concurrent_rpcs=settings.max_concurrent_rpcs, tracer=self.tracing.tracer)
        self._stop_jobs = asyncio.Event()
        self._jobs: asyncio.Task[None] | None = None
        self._dispatch: asyncio.Task[None] | None = None
        self._tokens_current: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Created here, not in __init__: grpc.aio binds the server to the running loop.
        self._server = server = grpc.aio.server(
            interceptors=[self._interceptor],
            options=[("grpc.max_receive_message_length", self.settings.max_message_bytes),
                     ("grpc.max_send_message_length", self.settings.max_message_bytes),
                     # Keepalive: find dead producers' streams; let clients ping every 10 s.
                     ("grpc.keepalive_time_ms", int(self.settings.keepalive_seconds * 1000)),
                     ("grpc.keepalive_timeout_ms", 20_000),
                     ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                     ("grpc.keepalive_permit_without_calls", 1),
                     # A fixed window per stream: with BDP probing, gRPC grows it to several MiB,
                     # all of which it accepts for a call before the call is admitted (48 calls
                     # refused unread still took the server from 107 to 436 MiB, measured).
                     ("grpc.http2.bdp_probe", 0),
                     ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
                     # gRPC sets SO_REUSEPORT by default: a second server on the same port
                     # would start silently and take half the calls. Refuse instead.
                     ("grpc.so_reuseport", 0)],
        )
        self._health = health.aio.HealthServicer()
        billing_grpc.add_BillingServiceServicer_to_server(
            BillingServicer(self.db, dunning_days=self.settings.dunning_days,
                            gl_account=self.settings.gl_account,
                            allow_private_networks=self.settings.webhook_allow_private_networks,
                            change_request_ttl=timedelta(
                                hours=self.settings.change_request_ttl_hours)),
            server)
        self._clocks = AccountClocks(self.db)
        self._writer = IngestionWriter(self.db, retention_days=self.settings.usage_retention_days,
                                       tracer=self.tracing.tracer, clocks=self._clocks)
        codec, unavailable = native.codec(self.settings.native_ingestion)
        # Off is a warning: the service is correct without it, but several times slower on SQLite.
        (log.info if not unavailable else log.warning)(
            "ingestion_kernel", active=not unavailable, codec=codec.name,
            reason=unavailable or None)
        usage.add_to_server(usage.UsageServicer(
            self.db, self._writer, stream_idle_seconds=self.settings.stream_idle_seconds),
            server, codec)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable((*SERVICE_NAMES, health.SERVICE_NAME), server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self._bind(server)
        if self.settings.metrics_listen:
            try:
                self.metrics_port = serve_metrics(self.settings.metrics_listen, self.db)
            except (OSError, ValueError) as exc:
                raise ListenError(f"cannot listen on {self.settings.metrics_listen} "
                                  f"(BILLING_METRICS_LISTEN): {_reason(exc)}") from None
            log.info("metrics", address=self.settings.metrics_listen, port=self.metrics_port)
        # Bound before gRPC serves: a port in use stops the start before any call is answered.
        if self.settings.http_listen:
            self._rest = RestServer(self.db, self.settings)
            self.http_port = await self._rest.start()
            log.info("http_listening", address=self.settings.http_listen, port=self.http_port,
                     tls=bool(self.settings.tls_cert_file))
        await server.start()
        host = self.settings.listen.rsplit(":", 1)[0]
        log.info("listening", address=f"{host}:{self.port}")

        await asyncio.to_thread(upgrade, self.db, settings=self.settings)
        await asyncio.to_thread(partitions.ensure_ahead, self.db)  # PostgreSQL's raw usage
        tokens = await asyncio.to_thread(load_token_store, self.settings, self.db)
        self._interceptor.activate(tokens, self._clocks)
        if self._rest is not None:
            self._rest.activate(tokens, self._clocks)
        self._tokens_current = asyncio.create_task(tokens.keep_current(self._stop_jobs))
        self._writer.start()
        self._dispatcher = Dispatcher(self.db, self.settings, self.tracing.tracer)
        self._dispatch = asyncio.create_task(self._dispatcher.run(self._stop_jobs))
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self._jobs = asyncio.create_task(scheduler.run_forever(
            self.db, self.settings, self._stop_jobs, self.tracing.tracer))
        log.info("serving", database=self.db.url.render_as_string(hide_password=True))

    def _bind(self, server: grpc.aio.Server) -> int:
        """Plain TCP, TLS (cert + key), or mutual TLS (and a client CA: client certs required)."""
        settings = self.settings
        _check_can_listen(settings.listen)
        try:
            if not settings.tls_cert_file:
                return server.add_insecure_port(settings.listen)
            if not settings.tls_key_file:
                raise ListenError("BILLING_TLS_CERT_FILE needs BILLING_TLS_KEY_FILE")
            pair = (_read_pem(settings.tls_key_file, "BILLING_TLS_KEY_FILE"),
                    _read_pem(settings.tls_cert_file, "BILLING_TLS_CERT_FILE"))
            client_ca = None
            if settings.tls_client_ca_file:
                client_ca = _read_pem(settings.tls_client_ca_file, "BILLING_TLS_CLIENT_CA_FILE")
            credentials = grpc.ssl_server_credentials(
                [pair], root_certificates=client_ca, require_client_auth=client_ca is not None)
            return server.add_secure_port(settings.listen, credentials)
        except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
            raise ListenError(f"cannot listen on {settings.listen} (BILLING_LISTEN): "
                              f"{str(exc).split(';')[0]}") from None

    async def abandon(self) -> None:
        """Undo a ``start`` that failed part way: close the port and the database."""
        server = getattr(self, "_server", None)
        if server is not None:
            await server.stop(0)
        self.db.dispose()

    async def stop(self) -> None:
        """Refuse new calls, let in-flight ones finish within the grace period, release the DB."""
        grace = self.settings.shutdown_grace_seconds
        log.info("draining", grace_seconds=grace)
        await self._health.enter_graceful_shutdown()
        self._stop_jobs.set()
        # Both ports drain at once, within the one grace period.
        await asyncio.gather(self._server.stop(grace),
                             *([self._rest.stop()] if self._rest is not None else []))
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

    async def _set_health(self, status: int) -> None:  # a HealthCheckResponse.ServingStatus
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return."""
    server = BillingServer(settings)
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


def _check_can_listen(address: str) -> None:
    """Raise ``ListenError`` when ``address`` cannot be listened on, saying why (the address in
    use, not this host's, not an address): gRPC would say only "Failed to bind", after logging
    its own lines on stderr."""
    host, _, port_text = address.rpartition(":")
    try:
        port = int(port_text)
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (ValueError, OSError) as exc:
        raise ListenError(f"cannot listen on {address!r} (BILLING_LISTEN): expected HOST:PORT "
                          f"with a host of this machine ({_reason(exc)})") from None
    if port == 0:
        return
    failures: list[OSError] = []
    for family, kind, protocol, _name, sockaddr in infos:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                failures.append(exc)
    in_use = [exc for exc in failures if exc.errno == errno.EADDRINUSE]
    if in_use or len(failures) == len(infos):
        problem = "the address is already in use (is another billing-svc running?)" if in_use \
            else _reason(failures[0])
        raise ListenError(f"cannot listen on {address} (BILLING_LISTEN): {problem}")


def _read_pem(path: str, variable: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ListenError(f"{variable}={path!r}: cannot read it: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
