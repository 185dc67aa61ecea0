"""The gRPC server: its options, interceptor, servicers, health, reflection and port. What it
serves is built, and started and stopped, by the composition root (``billing_svc.app``)."""

from __future__ import annotations

import errno
import socket

import grpc
from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2
from as2aas.billing.v1 import billing_service_pb2_grpc as billing_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace

from billing_svc.api import reflection, usage
from billing_svc.api.billing import BillingServicer
from billing_svc.api.interceptor import ServiceInterceptor
from billing_svc.native import UsageCodec
from billing_svc.operator_errors import ListenError
from billing_svc.settings import Settings

SERVICE_NAMES = (
    billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
    usage_service_pb2.DESCRIPTOR.services_by_name["UsageService"].full_name,
)
# What a stream may send before the server reads it: 1 MiB keeps a stream at ~100 MB/s over a
# 10 ms round trip.
STREAM_WINDOW_BYTES = 1024 * 1024


class GrpcServer:
    """The gRPC half of a running billing-svc: the server object with its options, the
    interceptor, the servicers, health (``NOT_SERVING`` until the composition says otherwise) and
    reflection, and the port it binds. ``billing_svc.app`` builds the parts it serves and says
    when it serves."""

    def __init__(self, settings: Settings, tracer: trace.Tracer) -> None:
        self.settings = settings
        self.interceptor = ServiceInterceptor(
            settings.max_streams_per_caller,
            max_request_bytes=settings.max_request_bytes,
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            tracer=tracer,
        )
        self._server: grpc.aio.Server | None = None

    async def build(
        self, billing: BillingServicer, usage_servicer: usage.UsageServicer, codec: UsageCodec
    ) -> int:
        """Create the server (here, not in ``__init__``: grpc.aio binds it to the running loop)
        with every handler, not serving, and bind its port; the port bound."""
        self._server = server = grpc.aio.server(
            interceptors=[self.interceptor],
            options=[
                ("grpc.max_receive_message_length", self.settings.max_message_bytes),
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
                ("grpc.so_reuseport", 0),
            ],
        )
        self._health = health.aio.HealthServicer()
        billing_grpc.add_BillingServiceServicer_to_server(billing, server)
        usage.add_to_server(usage_servicer, server, codec)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable((*SERVICE_NAMES, health.SERVICE_NAME), server)
        await self.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        return self._bind(server)

    async def start(self) -> None:
        assert self._server is not None
        await self._server.start()

    def _bind(self, server: grpc.aio.Server) -> int:
        """Plain TCP, TLS (cert + key), or mutual TLS (and a client CA: client certs required)."""
        settings = self.settings
        _check_can_listen(settings.listen)
        try:
            if not settings.tls_cert_file:
                return server.add_insecure_port(settings.listen)
            if not settings.tls_key_file:
                raise ListenError("BILLING_TLS_CERT_FILE needs BILLING_TLS_KEY_FILE")
            pair = (
                _read_pem(settings.tls_key_file, "BILLING_TLS_KEY_FILE"),
                _read_pem(settings.tls_cert_file, "BILLING_TLS_CERT_FILE"),
            )
            client_ca = None
            if settings.tls_client_ca_file:
                client_ca = _read_pem(settings.tls_client_ca_file, "BILLING_TLS_CLIENT_CA_FILE")
            credentials = grpc.ssl_server_credentials(
                [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
            )
            return server.add_secure_port(settings.listen, credentials)
        except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
            raise ListenError(
                f"cannot listen on {settings.listen} (BILLING_LISTEN): {str(exc).split(';')[0]}"
            ) from None

    async def enter_graceful_shutdown(self) -> None:
        """Health says ``NOT_SERVING`` from now on (load balancers stop sending calls)."""
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls; let in-flight ones finish within ``grace`` seconds (0: none)."""
        if self._server is not None:
            await self._server.stop(grace)

    async def set_health(self, status: int) -> None:  # a HealthCheckResponse.ServingStatus
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)


def _check_can_listen(address: str) -> None:
    """Raise ``ListenError`` when ``address`` cannot be listened on, saying why (the address in
    use, not this host's, not an address): gRPC would say only "Failed to bind", after logging
    its own lines on stderr."""
    host, _, port_text = address.rpartition(":")
    try:
        port = int(port_text)
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (ValueError, OSError) as exc:
        raise ListenError(
            f"cannot listen on {address!r} (BILLING_LISTEN): expected HOST:PORT "
            f"with a host of this machine ({os_reason(exc)})"
        ) from None
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
        problem = (
            "the address is already in use (is another billing-svc running?)"
            if in_use
            else os_reason(failures[0])
        )
        raise ListenError(f"cannot listen on {address} (BILLING_LISTEN): {problem}")


def _read_pem(path: str, variable: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ListenError(f"{variable}={path!r}: cannot read it: {os_reason(exc)}") from None


def os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
