"""Around every RPC: admission (caller, capacity, size), decoding, request context, error mapping,
one log line and one trace span.

Implemented as a server interceptor that serves every method through a request-streaming handler
whose deserializer is the identity. grpc.aio receives and decodes a unary request's body before it
calls a unary handler, so only a handler that reads the body itself can refuse a call from its
metadata (an unknown caller, a server at capacity) without receiving it; and only bytes decoded
here have their decode errors mapped (grpc would answer ``UNKNOWN``). The wrapper runs in the
RPC's own task, so the servicer reads the caller from a context variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from opentelemetry import context as otel_context
from opentelemetry import trace

from billing_svc import metrics, tracing
from billing_svc.api.auth import METHOD_SCOPES, OPEN_PREFIXES, TokenStore, check_account
from billing_svc.api.common import deadline
from billing_svc.api.errors import status_code_of, trailing_details
from billing_svc.api.limits import TEXT_LIMITS, check_text
from billing_svc.domain.errors import BillingError, InvalidArgument
from billing_svc.domain.ids import new_id
from billing_svc.services.context import RequestContext
from billing_svc.services.test_clocks import RESOURCE_OWNERS, AccountClocks

log = structlog.get_logger("billing_svc.rpc")

_request_context: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("request")
# The fields of the ``rpc`` log line of the call being served, which its servicer may add to.
_log_fields: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("rpc_log_fields")
_USAGE = "/as2aas.billing.v1.UsageService/"
# Usage batches are checked event by event in ingestion (a bad event is rejected, not the call).
_PER_EVENT_CHECKED = frozenset({_USAGE + "RecordUsage"})
# The only methods whose requests may be as large as BILLING_MAX_MESSAGE_BYTES (gRPC's own limit).
LARGE_REQUEST_METHODS = frozenset({_USAGE + "StreamUsage", _USAGE + "RecordUsage"})
# Health and reflection calls in flight at once. They need no token, so nothing refuses their
# bodies unread: gRPC takes in up to BILLING_MAX_MESSAGE_BYTES of one before its length can be
# checked. This bounds what callers nobody knows can make the server hold (4 x 16 MiB); a real
# health check is a few bytes answered at once, so 4 is more than probes need.
MAX_OPEN_CALLS = 4
# The codes that are the server's failure, not the caller's (OpenTelemetry's gRPC conventions):
# only these mark a span as an error.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
# A call's span and the token that makes it current in the call's task until it ends.
_Span = tuple[trace.Span, contextvars.Token[otel_context.Context]]


def current_context() -> RequestContext:
    """The context of the RPC being served (set by the interceptor)."""
    return _request_context.get()


def enter_context(ctx: RequestContext) -> None:
    """Make ``ctx`` the current task's request context: for the other entry point (the REST
    port) that serves the same service functions."""
    _request_context.set(ctx)


async def at_account_clock(
    clocks: AccountClocks | None, account_id: str | None, invoice_id: str = ""
) -> None:
    """A call about a test clock's account (or its invoice: payment results) runs at the
    clock's time (services read ``ctx.now``); a real account's costs one lookup per process,
    then none."""
    if clocks is None:
        return
    if account_id:
        if clocks.known_real(account_id):
            return
        frozen = await asyncio.to_thread(clocks.now_for, account_id)
    elif invoice_id:
        frozen = await asyncio.to_thread(clocks.now_for_invoice, invoice_id)
    else:
        return
    if frozen is not None:
        _request_context.set(dataclasses.replace(_request_context.get(), now=frozen))


def log_fields() -> dict[str, Any]:
    """The fields the ``rpc`` log line of the RPC being served will carry: a servicer adds what
    only it knows (the usage RPCs: account, batch, counts). Outside an RPC, a throwaway dict."""
    return _log_fields.get({})


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class _Method:
    """What the wrapper needs to know of one method to read its requests."""

    name: str
    deserializer: Callable[[bytes], Any]
    max_request_bytes: int | None  # None: only gRPC's server-wide limit
    open: bool  # health and reflection: no token, and logged only when they fail

    def decode(self, raw: bytes) -> Any:
        """The request in ``raw``, refused from its length first, then if it does not decode."""
        if self.max_request_bytes is not None and len(raw) > self.max_request_bytes:
            raise _Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the request is {len(raw):,} bytes; {self.name} accepts at most "
                f"{self.max_request_bytes:,} (BILLING_MAX_REQUEST_BYTES): only "
                "StreamUsage and RecordUsage take large messages",
            )
        try:
            return self.deserializer(raw)
        except DecodeError as exc:
            raise _Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request bytes are not a valid request of {self.name} ({exc}); "
                "send the message its .proto declares, serialized by a protobuf "
                "library (strings in UTF-8, groups and messages nested at most 100 "
                "deep)",
            ) from exc


@dataclass
class _Call:
    """One RPC being served: its log fields and the slots it holds."""

    fields: dict[str, Any]
    counted: bool = False
    counted_open: bool = False
    stream_of: str | None = None


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Installed before the server starts; ``activate`` it once migrations are done."""

    def __init__(
        self,
        max_streams_per_caller: int = 16,
        *,
        max_request_bytes: int = 1 << 20,
        max_concurrent_rpcs: int = 512,
        tracer: trace.Tracer = tracing.NO_TRACER,
    ) -> None:
        self._tokens: TokenStore | None = None
        self._max_streams = max_streams_per_caller
        self._streams: dict[str, int] = {}
        self._max_request_bytes = max_request_bytes
        self._max_in_flight = max_concurrent_rpcs
        self._in_flight = 0
        self._open_in_flight = 0
        self._wrapped: dict[str, tuple[Any, Any]] = {}
        self._tracer = tracer
        self._tracing = tracer is not tracing.NO_TRACER
        self._clocks: AccountClocks | None = None

    def activate(self, tokens: TokenStore, clocks: AccountClocks | None = None) -> None:
        self._tokens = tokens
        self._clocks = clocks

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:  # gRPC answers UNIMPLEMENTED without reading the request
            return None
        method = details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = (handler, self._wrap(method, handler))
            self._wrapped[method] = known
        return known[1]

    def _wrap(self, method: str, handler: Any) -> Any:
        """The handler that serves ``method`` in ``handler``'s place; any kind of handler it cannot
        wrap is refused (``UNIMPLEMENTED``), never served as it is, without authentication."""
        spec = _Method(
            method,
            handler.request_deserializer or _identity,
            None if method in LARGE_REQUEST_METHODS else self._max_request_bytes,
            method.startswith(OPEN_PREFIXES),
        )
        behavior = (
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream
        )
        serializer = handler.response_serializer
        if handler.response_streaming and (
            inspect.isasyncgenfunction(behavior) or inspect.iscoroutinefunction(behavior)
        ):
            return grpc.stream_stream_rpc_method_handler(
                self._stream_response(spec, behavior, handler.request_streaming),
                response_serializer=serializer,
            )
        if not handler.response_streaming and inspect.iscoroutinefunction(behavior):
            return grpc.stream_unary_rpc_method_handler(
                self._unary_response(spec, behavior, handler.request_streaming),
                response_serializer=serializer,
            )
        log.warning(
            "rpc_handler_refused", rpc=method, reason="not an asyncio unary or streaming handler"
        )
        return grpc.stream_unary_rpc_method_handler(_refuse_unwrapped(method))

    def _authorize(self, method: str, metadata: Mapping[str, Any]) -> RequestContext:
        """The caller of a call to ``method`` and its context, from the call's metadata alone
        (nothing of the request has been received yet); raises if the call may not proceed."""
        if self._tokens is None:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "billing-svc is starting; retry shortly")
        authorization = str(metadata.get("authorization", ""))
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: send 'authorization: Bearer <token>' metadata",
            )
        caller = self._tokens.authenticate(token.strip())  # Unauthenticated, saying why
        scope = METHOD_SCOPES.get(method)
        if scope is None or not caller.has(scope):
            needed = scope or "a known method"
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {caller.name!r} lacks the {needed!r} scope for {method}",
            )
        request_id = str(metadata.get("x-request-id", "")) or new_id("req")
        if len(request_id) > TEXT_LIMITS["request_id"]:  # it is logged, audited and quoted
            raise InvalidArgument(
                "request_id",
                f"(or x-request-id metadata) is longer than {TEXT_LIMITS['request_id']} characters",
            )
        return RequestContext(
            caller=caller, request_id=request_id, tracer=self._tracer, now=self._tokens.clock.now()
        )

    def _admit(
        self,
        spec: _Method,
        context: grpc.aio.ServicerContext,
        call: _Call,
        streaming_requests: bool,
    ) -> None:
        """Deadline, caller, capacity and the caller's streams: all decided before a byte of the
        request is read."""
        remaining = context.time_remaining()
        deadline.set(time.monotonic() + remaining if remaining is not None else None)
        caller = None
        if not spec.open:
            ctx = self._authorize(spec.name, dict(context.invocation_metadata() or ()))
            caller = ctx.caller.name
            call.fields.update(caller=caller, request_id=ctx.request_id)
            _request_context.set(ctx)
        if self._in_flight >= self._max_in_flight:
            raise _Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"billing-svc is serving {self._max_in_flight} calls, its limit "
                "(BILLING_MAX_CONCURRENT_RPCS); retry with backoff",
            )
        self._in_flight += 1
        call.counted = True
        if spec.open:
            if self._open_in_flight >= MAX_OPEN_CALLS:
                raise _Refused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{MAX_OPEN_CALLS} health and reflection calls are in flight, "
                    "their limit; retry shortly",
                )
            self._open_in_flight += 1
            call.counted_open = True
        if caller is not None and streaming_requests:
            if self._streams.get(caller, 0) >= self._max_streams:
                raise _Refused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"caller {caller!r} already has {self._max_streams} "
                    "streams open; send more batches per stream instead",
                )
            self._streams[caller] = self._streams.get(caller, 0) + 1
            call.stream_of = caller

    def _release(self, call: _Call) -> None:
        if call.counted:
            self._in_flight -= 1
        if call.counted_open:
            self._open_in_flight -= 1
        if call.stream_of is not None:
            self._streams[call.stream_of] -= 1

    async def _request(self, spec: _Method, context: grpc.aio.ServicerContext, call: _Call) -> Any:
        """The one request of a unary-request method, read, checked and decoded."""
        raw = await context.read()
        if raw is grpc.aio.EOF:
            raise _Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the call to {spec.name} carried no request message",
            )
        request = spec.decode(raw)
        if spec.open:
            return request
        call.fields["account_id"] = getattr(request, "account_id", "") or None
        request_id = getattr(request, "request_id", "")
        if request_id:
            call.fields["request_id"] = request_id
            _request_context.set(dataclasses.replace(_request_context.get(), request_id=request_id))
        if spec.name not in _PER_EVENT_CHECKED:
            check_text(request)
        check_account(_request_context.get().caller, spec.name, request)
        await self._on_account_clock(call.fields["account_id"], request)
        return request

    def _start_span(self, spec: _Method, context: grpc.aio.ServicerContext) -> _Span | None:
        """The call's span, current in this task, a child of the caller's when its metadata
        carries a ``traceparent``. Health and reflection calls are not traced: probes would
        bury the service's own calls (they are not logged either, unless they fail)."""
        if not self._tracing or spec.open:
            return None
        service, _, name = spec.name.lstrip("/").rpartition("/")
        parent = tracing.incoming(dict(context.invocation_metadata() or ()))
        span = self._tracer.start_span(
            spec.name.lstrip("/"),
            parent,
            kind=trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    async def _on_account_clock(self, account_id: str | None, request: Any) -> None:
        """A call about a test clock's account (or a resource of it named only by its id: an
        invoice, a webhook endpoint or event, a change request, a master partner) runs at the
        clock's time (services read ``ctx.now``); a real account's (or resource's) costs one
        lookup per process, then none."""
        clocks = self._clocks
        if clocks is None:
            return
        if account_id:
            if clocks.known_real(account_id):
                return
            frozen = await asyncio.to_thread(clocks.now_for, account_id)
        else:
            named = next(
                (
                    (field, value)
                    for field in RESOURCE_OWNERS
                    if isinstance(value := getattr(request, field, ""), str) and value
                ),
                None,
            )
            if named is None:
                return
            frozen = await asyncio.to_thread(clocks.now_for_resource, *named)
        if frozen is not None:
            _request_context.set(dataclasses.replace(_request_context.get(), now=frozen))

    def _unary_response(self, spec: _Method, behavior: Any, streaming_requests: bool) -> Any:
        async def serve(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            call = _Call({"rpc": spec.name, "account_id": None, "code": grpc.StatusCode.OK})
            span = self._start_span(spec, context)
            _log_fields.set(call.fields)
            try:
                self._admit(spec, context, call, streaming_requests)
                argument = (
                    _decoded(spec, requests)
                    if streaming_requests
                    else await self._request(spec, context, call)
                )
                return await behavior(argument, context)
            except asyncio.CancelledError:  # the caller went away or its deadline passed
                call.fields["code"] = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:  # every error becomes a status here
                await _abort(context, exc, call.fields)
            finally:
                self._release(call)
                _end_span(span, call.fields)
                _log_rpc(call.fields, started, spec.open)

        return serve

    def _stream_response(self, spec: _Method, behavior: Any, streaming_requests: bool) -> Any:
        async def serve(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            call = _Call({"rpc": spec.name, "code": grpc.StatusCode.OK})
            span = self._start_span(spec, context)
            _log_fields.set(call.fields)
            try:
                self._admit(spec, context, call, streaming_requests)
                argument = (
                    _decoded(spec, requests)
                    if streaming_requests
                    else await self._request(spec, context, call)
                )
                # A stream of a token revoked or expired meanwhile is closed from outside.
                held = (
                    contextlib.nullcontext()
                    if spec.open or self._tokens is None
                    else self._tokens.hold_stream(
                        _request_context.get().caller, context, call.fields
                    )
                )
                with held:
                    if inspect.isasyncgenfunction(behavior):
                        async for response in behavior(argument, context):
                            yield response
                    else:  # a coroutine that writes its responses with context.write
                        await behavior(argument, context)
            except asyncio.CancelledError:
                call.fields["code"] = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                await _abort(context, exc, call.fields)
            finally:
                self._release(call)
                _end_span(span, call.fields)
                _log_rpc(call.fields, started, spec.open)

        return serve


def _identity(raw: bytes) -> bytes:
    return raw


async def _decoded(spec: _Method, requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    async for raw in requests:
        yield spec.decode(raw)


def _refuse_unwrapped(method: str) -> Any:
    async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{method} cannot be served: its handler is of a kind the "
            "interceptor does not wrap (an asyncio handler is needed)",
        )

    return refuse


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, fields: dict[str, Any]) -> None:
    """End the call with the status ``exc`` maps to (``context.abort`` raises ``AbortError``)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    trailers: tuple[tuple[str, str | bytes], ...]
    if isinstance(exc, _Refused):
        code, message, trailers = exc.code, str(exc), ()
    elif isinstance(exc, NotImplementedError):
        code, message, trailers = (
            grpc.StatusCode.UNIMPLEMENTED,
            f"{fields['rpc']} is not implemented yet",
            (),
        )
    elif isinstance(exc, BillingError):
        code = status_code_of(exc)
        message, trailers = str(exc), trailing_details(exc, code)
    else:
        code, trailers = grpc.StatusCode.INTERNAL, ()
        message = (
            f"internal error (request id {fields.get('request_id', '?')}); "
            "it was logged, please report it"
        )
        log.error("rpc_failed", exc_info=exc, **fields)
        trace.get_current_span().record_exception(exc)
    fields.update(code=code, error=message)
    await context.abort(code, message, trailing_metadata=trailers)


def _end_span(span: _Span | None, fields: dict[str, Any]) -> None:
    """End the call's span with what its log line says: status code, caller, account."""
    if span is None:
        return
    current, token = span
    code: grpc.StatusCode = fields["code"]
    current.set_attribute("rpc.grpc.status_code", code.value[0])
    for field, attribute in (
        ("account_id", "billing.account_id"),
        ("caller", "billing.caller"),
        ("request_id", "billing.request_id"),
    ):
        if fields.get(field):
            current.set_attribute(attribute, str(fields[field]))
    request = _request_context.get(None)
    if not fields.get("account_id") and request is not None and request.caller.account_id:
        current.set_attribute("billing.account_id", request.caller.account_id)  # a bound token
    if code in _SERVER_ERRORS:
        current.set_status(trace.StatusCode.ERROR, fields.get("error"))
    current.end()
    otel_context.detach(token)


def _log_rpc(fields: dict[str, Any], started: float, only_failures: bool = False) -> None:
    code: grpc.StatusCode = fields.pop("code")
    if only_failures and code == grpc.StatusCode.OK:
        return
    metrics.observe_rpc(fields["rpc"], code.name, started)
    log.info(
        "rpc",
        code=code.name,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
