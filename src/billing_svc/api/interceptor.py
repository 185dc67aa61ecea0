"""Around every RPC: authentication, scope check, request context, error mapping and one log line.

Implemented as a server interceptor that wraps each method handler, so the wrapper runs in the
RPC's own task and the servicer reads the caller from a context variable.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog

from billing_svc import metrics
from billing_svc.api.auth import METHOD_SCOPES, OPEN_PREFIXES, TokenStore, check_account
from billing_svc.api.common import deadline
from billing_svc.api.errors import status_code_of, trailing_details
from billing_svc.api.limits import TEXT_LIMITS, check_text
from billing_svc.domain.errors import BillingError, InvalidArgument
from billing_svc.domain.ids import new_id
from billing_svc.services.context import RequestContext

log = structlog.get_logger("billing_svc.rpc")

_request_context: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("request")
# Usage batches are checked event by event in ingestion (a bad event is rejected, not the call).
_PER_EVENT_CHECKED = frozenset({"/as2aas.billing.v1.UsageService/RecordUsage"})


def current_context() -> RequestContext:
    """The context of the RPC being served (set by the interceptor)."""
    return _request_context.get()


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Installed before the server starts; ``activate`` it once migrations are done."""

    def __init__(self, max_streams_per_caller: int = 16) -> None:
        self._tokens: TokenStore | None = None
        self._max_streams = max_streams_per_caller
        self._streams: dict[str, int] = {}

    def activate(self, tokens: TokenStore) -> None:
        self._tokens = tokens

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler

    def _authorize(self, method: str, context: grpc.aio.ServicerContext,
                   request: Any) -> RequestContext:
        remaining = context.time_remaining()
        deadline.set(time.monotonic() + remaining if remaining is not None else None)
        if self._tokens is None:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "billing-svc is starting; retry shortly")
        metadata = dict(context.invocation_metadata() or ())
        authorization = str(metadata.get("authorization", ""))
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED,
                           "missing credentials: send 'authorization: Bearer <token>' metadata")
        caller = self._tokens.authenticate(token.strip())  # Unauthenticated, saying why
        scope = METHOD_SCOPES.get(method)
        if scope is None or not caller.has(scope):
            needed = scope or "a known method"
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED,
                           f"caller {caller.name!r} lacks the {needed!r} scope for {method}")
        request_id = (getattr(request, "request_id", "") or str(metadata.get("x-request-id", ""))
                      or new_id("req"))
        if len(request_id) > TEXT_LIMITS["request_id"]:  # it is logged, audited and quoted
            raise InvalidArgument("request_id", f"(or x-request-id metadata) is longer than "
                                  f"{TEXT_LIMITS['request_id']} characters")
        return RequestContext(caller=caller, request_id=request_id)

    def _wrap_unary(self, method: str, behavior: Any) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            fields = {"rpc": method, "account_id": getattr(request, "account_id", "") or None,
                      "code": grpc.StatusCode.OK}
            try:
                ctx = self._authorize(method, context, request)
                fields.update(caller=ctx.caller.name, request_id=ctx.request_id)
                _request_context.set(ctx)
                if method not in _PER_EVENT_CHECKED:
                    check_text(request)
                check_account(ctx.caller, method, request)
                return await behavior(request, context)
            except asyncio.CancelledError:  # the caller went away or its deadline passed
                fields["code"] = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:  # every error becomes a status here
                await _abort(context, exc, fields)
            finally:
                _log_rpc(fields, started)

        return wrapped

    def _wrap_stream(self, method: str, behavior: Any) -> Any:
        async def wrapped(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            fields: dict[str, Any] = {"rpc": method, "code": grpc.StatusCode.OK}
            caller = None
            try:
                ctx = self._authorize(method, context, None)
                fields.update(caller=ctx.caller.name, request_id=ctx.request_id)
                _request_context.set(ctx)
                if self._streams.get(ctx.caller.name, 0) >= self._max_streams:
                    raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f"caller {ctx.caller.name!r} already has {self._max_streams} "
                                   "streams open; send more batches per stream instead")
                caller = ctx.caller.name
                self._streams[caller] = self._streams.get(caller, 0) + 1
                assert self._tokens is not None
                with self._tokens.hold_stream(ctx.caller, context, fields):
                    async for response in behavior(requests, context):
                        yield response
            except asyncio.CancelledError:
                fields["code"] = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                await _abort(context, exc, fields)
            finally:
                if caller is not None:
                    self._streams[caller] -= 1
                _log_rpc(fields, started)

        return wrapped


async def _abort(context: grpc.aio.ServicerContext, exc: Exception,
                 fields: dict[str, Any]) -> None:
    """End the call with the status ``exc`` maps to (``context.abort`` raises ``AbortError``)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if isinstance(exc, _Refused):
        code, message, trailers = exc.code, str(exc), ()
    elif isinstance(exc, NotImplementedError):
        code, message, trailers = (grpc.StatusCode.UNIMPLEMENTED,
                                   f"{fields['rpc']} is not implemented yet", ())
    elif isinstance(exc, BillingError):
        code = status_code_of(exc)
        message, trailers = str(exc), trailing_details(exc, code)
    else:
        code, trailers = grpc.StatusCode.INTERNAL, ()
        message = (f"internal error (request id {fields.get('request_id', '?')}); "
                   "it was logged, please report it")
        log.error("rpc_failed", exc_info=exc, **fields)
    fields.update(code=code, error=message)
    await context.abort(code, message, trailing_metadata=trailers)


def _log_rpc(fields: dict[str, Any], started: float) -> None:
    code: grpc.StatusCode = fields.pop("code")
    metrics.observe_rpc(fields["rpc"], code.name, started)
    log.info("rpc", code=code.name, duration_ms=round((time.perf_counter() - started) * 1000, 3),
             **fields)
