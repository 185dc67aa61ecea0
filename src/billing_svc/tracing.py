"""OpenTelemetry traces: off unless ``BILLING_OTEL_EXPORTER`` names an exporter.

Every traced place (the RPC interceptor, the group commit, period closing, webhook attempts) is
handed a ``Tracer`` by the server instead of reading OpenTelemetry's process-global provider: one
process may run several servers (the tests do), and each must report to its own provider. Off,
that tracer is the API's no-op one and the SDK and the exporters are never imported.

The W3C trace context (``traceparent``) is read from incoming gRPC metadata and written on webhook
requests with the API's own propagator, not ``OTEL_PROPAGATORS``: what crosses the wire is the one
W3C header the service documents, whatever else a host's environment configures.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from billing_svc.settings import Settings

EXPORTERS = ("none", "otlp", "console")
"""The values of ``BILLING_OTEL_EXPORTER``."""

INSTRUMENTATION = "billing_svc"
SERVICE = "billing-svc"
NO_TRACER: trace.Tracer = trace.NoOpTracer()

_W3C = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class Tracing:
    """The tracer a server hands to what it runs, and the provider behind it, if any."""

    tracer: trace.Tracer = NO_TRACER
    # The provider this server built from its settings (it flushes and shuts it down at stop);
    # None when tracing is off or the provider was given by the caller, who owns it.
    owned_provider: TracerProvider | None = None

    @property
    def enabled(self) -> bool:
        return self.tracer is not NO_TRACER

    def shutdown(self) -> None:
        """Export what is still buffered, then stop the exporter (the server's last step)."""
        if self.owned_provider is not None:
            self.owned_provider.shutdown()


OFF = Tracing()


def configure(settings: Settings, provider: TracerProvider | None = None) -> Tracing:
    """The tracing of one server: ``provider`` when given (tests pass one that records in
    memory), else one built for ``settings.otel_exporter``, else off."""
    if provider is not None:
        return Tracing(provider.get_tracer(INSTRUMENTATION))
    if settings.otel_exporter == "none":
        return OFF
    built = build_provider(settings)
    return Tracing(built.get_tracer(INSTRUMENTATION), built)


def build_provider(settings: Settings) -> TracerProvider:
    """An SDK provider that batches spans to the exporter ``settings.otel_exporter`` names.

    ``otlp`` is OTLP over HTTP/protobuf, configured by the standard ``OTEL_EXPORTER_OTLP_*``
    variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``; headers,
    timeout, certificates); ``console`` writes each span as JSON to stderr (stdout carries the
    JSON log lines). The service is named ``billing-svc`` unless ``OTEL_SERVICE_NAME`` (or
    ``OTEL_RESOURCE_ATTRIBUTES``) names it otherwise."""
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter(out=sys.stderr)
    # Resource.create's own attributes would win over the environment's: merge it in last.
    resource = Resource.create({SERVICE_NAME: SERVICE}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def incoming(metadata: Mapping[str, Any]) -> context.Context:
    """The caller's trace context from gRPC metadata (``traceparent``, ``tracestate``); an empty
    context, so the span starts a new trace, when there is none or it is malformed."""
    return _W3C.extract(metadata)


def outgoing(headers: MutableMapping[str, str]) -> None:
    """Add the current span's ``traceparent`` (and ``tracestate``) to ``headers``; nothing when
    no span is being recorded."""
    _W3C.inject(headers)
