"""The seed's REST surface: its two documented calls on an optional HTTP port (aiohttp).

``BILLING_HTTP_LISTEN`` turns it on, inside the ``serve`` process and beside the gRPC port, with
the same TLS settings, the same bearer tokens and scopes, and the same use cases: each handler
calls the service function its gRPC method calls, converts the result as the gRPC method does,
and projects that message to the seed's plain JSON (``rest_json``). Errors keep the gRPC status
name as their code and the HTTP status that matches it (``HTTP_STATUS``; docs/rest.md).

Nothing of a request but its request line and headers is read (both bounded by the HTTP parser):
a body is never read, so a caller nobody knows cannot make the server hold one.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import grpc
import structlog
from aiohttp import web
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as usage_pb

from billing_svc import metrics
from billing_svc.api import convert, rest_json
from billing_svc.api.auth import METHOD_SCOPES, TokenStore, check_account
from billing_svc.api.common import run
from billing_svc.api.errors import status_code_of
from billing_svc.api.interceptor import at_account_clock, enter_context
from billing_svc.api.limits import TEXT_LIMITS, check_text
from billing_svc.domain.errors import BillingError, InvalidArgument, cut
from billing_svc.domain.ids import new_id
from billing_svc.services import accounts, test_clocks, usage_reports
from billing_svc.services.context import Caller, RequestContext
from billing_svc.services.store import Database
from billing_svc.services.test_clocks import AccountClocks
from billing_svc.settings import Settings

log = structlog.get_logger("billing_svc.http")

_BILLING_RPC = "/as2aas.billing.v1.BillingService/GetAccountBilling"
_USAGE_RPC = "/as2aas.billing.v1.UsageService/GetCurrentUsage"

# gRPC status -> HTTP status. FAILED_PRECONDITION is 409 (the resource's state forbids the call),
# not 412, which HTTP keeps for conditional request headers (If-Match…), none of which we take.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 405,  # a known path, a method other than GET
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# The path and query together: an account id is at most 128 characters (api/limits.py), so
# anything longer is a mistake. The HTTP parser refuses request lines over MAX_LINE_BYTES itself.
MAX_TARGET_LENGTH = 1024
MAX_LINE_BYTES = 4096
MAX_HEADER_BYTES = 8190
MAX_HEADERS = 64
# An idle keep-alive connection is closed after this (aiohttp's default is an hour).
KEEPALIVE_SECONDS = 75.0
_PERCENT_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class _Route:
    """One REST call: the gRPC method it is (for its scope and account check) and its handler."""

    name: str  # "GET /v1/…", for logs and metrics
    rpc: str
    # (request, caller, log fields) -> body; it names its account in the log fields.
    handler: Callable[[web.Request, Caller, dict[str, Any]], Awaitable[dict[str, Any]]]


def parse_listen(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) of ``BILLING_HTTP_LISTEN``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"BILLING_HTTP_LISTEN: expected host:port (e.g. 127.0.0.1:8080), got {address!r}"
        )
    return host.strip("[]"), int(port)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The gRPC port's TLS, from the same settings: none, server TLS, or mutual TLS."""
    if not settings.tls_cert_file:
        return None
    if not settings.tls_key_file:
        raise ValueError("BILLING_TLS_CERT_FILE needs BILLING_TLS_KEY_FILE")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.tls_client_ca_file:
        context.load_verify_locations(settings.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class RestServer:
    """``start`` binds (answering 503 until ``activate``), ``stop`` drains."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.port = 0
        self._tokens: TokenStore | None = None
        self._clocks: AccountClocks | None = None
        self._in_flight = 0
        self._max_in_flight = settings.max_concurrent_rpcs
        self._routes = {
            "billing": _Route(
                "GET /v1/accounts/{account}/billing", _BILLING_RPC, self._account_billing
            ),
            "usage": _Route("GET /v1/billing/usage/current", _USAGE_RPC, self._current_usage),
        }

    def activate(self, tokens: TokenStore, clocks: AccountClocks | None = None) -> None:
        self._tokens = tokens
        self._clocks = clocks

    async def start(self) -> int:
        host, port = parse_listen(self.settings.http_listen)
        app = web.Application(
            client_max_size=1024,
            handler_args={
                "max_line_size": MAX_LINE_BYTES,
                "max_field_size": MAX_HEADER_BYTES,
                "max_headers": MAX_HEADERS,
                "keepalive_timeout": KEEPALIVE_SECONDS,
            },
        )
        app.router.add_route(
            "*", "/v1/accounts/{account}/billing", self._endpoint(self._routes["billing"])
        )
        app.router.add_route(
            "*", "/v1/billing/usage/current", self._endpoint(self._routes["usage"])
        )
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=self.settings.shutdown_grace_seconds
        )
        await self._runner.setup()
        # No SO_REUSEPORT: a second server on the same port fails to start instead of sharing it.
        site = web.TCPSite(
            self._runner, host, port, ssl_context=ssl_context(self.settings), reuse_port=False
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OSError(
                exc.errno,
                f"BILLING_HTTP_LISTEN={self.settings.http_listen}: cannot "
                f"listen there ({exc.strerror or exc}); is another process serving "
                "it?",
            ) from exc
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()

    def _endpoint(self, route: _Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            started = time.perf_counter()
            fields: dict[str, Any] = {"route": route.name, "rpc": route.rpc, "account_id": None}
            counted = False
            code = grpc.StatusCode.OK
            request_id = ""
            try:
                if request.method not in ("GET", "HEAD"):
                    raise _Refused(
                        grpc.StatusCode.UNIMPLEMENTED,
                        f"{request.method} is not served here: {route.name}",
                    )
                ctx = self._authorize(route, request)
                enter_context(ctx)  # the services' and converters' current_context()
                request_id = ctx.request_id
                fields.update(caller=ctx.caller.name, request_id=request_id)
                if self._in_flight >= self._max_in_flight:
                    raise _Refused(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"billing-svc is serving {self._max_in_flight} HTTP requests, "
                        "its limit (BILLING_MAX_CONCURRENT_RPCS); retry with backoff",
                    )
                self._in_flight += 1
                counted = True
                if len(request.raw_path) > MAX_TARGET_LENGTH:
                    raise InvalidArgument(
                        "path",
                        f"is longer than {MAX_TARGET_LENGTH} characters, path and query together",
                    )
                _check_escapes(request.raw_path)
                response = _json(200, await route.handler(request, ctx.caller, fields))
            except Exception as exc:  # every error becomes a JSON error here
                code, response = self._error(exc, fields, request_id)
            finally:
                if counted:
                    self._in_flight -= 1
            if request_id:
                response.headers["X-Request-Id"] = request_id
            metrics.observe_rpc(route.name, code.name, started)
            log.info(
                "http",
                status=response.status,
                code=code.name,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                **fields,
            )
            return response

        return serve

    def _authorize(self, route: _Route, request: web.Request) -> RequestContext:
        """The caller, from the Authorization header: the gRPC port's rules and messages."""
        if self._tokens is None:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "billing-svc is starting; retry shortly")
        authorizations = request.headers.getall("Authorization", [])
        if len(authorizations) > 1:
            # Which one would be the caller? Taking either could let a proxy's header (or an
            # attacker's) stand for the caller's; HTTP allows one Authorization field.
            raise InvalidArgument(
                "Authorization",
                f"is given {len(authorizations)} times; send "
                "one 'Authorization: Bearer <token>' header",
            )
        scheme, _, token = (authorizations or [""])[0].partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: send an 'Authorization: Bearer <token>' header",
            )
        if not token.isascii():
            # aiohttp hands undecodable header bytes over as surrogates, which no hash takes;
            # every token billing-svc makes (and gRPC metadata carries) is ASCII.
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "invalid credentials: the bearer token is not ASCII text",
            )
        caller = self._tokens.authenticate(token.strip())  # Unauthenticated, saying why
        scope = METHOD_SCOPES[route.rpc]
        if not caller.has(scope):
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {caller.name!r} lacks the {scope!r} scope for {route.name}",
            )
        request_id = request.headers.get("X-Request-Id", "") or new_id("req")
        if len(request_id) > TEXT_LIMITS["request_id"]:
            raise InvalidArgument(
                "X-Request-Id", f"is longer than {TEXT_LIMITS['request_id']} characters"
            )
        if not (request_id.isascii() and request_id.isprintable()):
            # As on the gRPC port, whose metadata is printable ASCII: the id is echoed in a
            # response header and written to logs and the audit trail.
            raise InvalidArgument("X-Request-Id", "must be printable ASCII")
        return RequestContext(caller=caller, request_id=request_id, now=self.db.clock.now())

    async def _account_billing(
        self, request: web.Request, caller: Caller, fields: dict[str, Any]
    ) -> dict[str, Any]:
        account_id = request.match_info["account"]
        fields["account_id"] = cut(account_id)
        _only_parameters(request, ())
        message = pb.GetAccountBillingRequest(account_id=account_id)
        _admit(caller, _BILLING_RPC, message)
        await at_account_clock(self._clocks, account_id)
        view = await run(accounts.get_account_billing, self.db, account_id)
        # No interceptor here to say what time it is: the account's clock, or the wall's.
        _, clock_now = await run(test_clocks.clock_time_of_account, self.db, account_id)
        return rest_json.account_billing(
            convert.account_billing_out(view, clock_now or self.db.clock.now())
        )

    async def _current_usage(
        self, request: web.Request, caller: Caller, fields: dict[str, Any]
    ) -> dict[str, Any]:
        _only_parameters(request, ("account_id",))
        account_id = request.query.get("account_id", "") or caller.account_id
        fields["account_id"] = cut(account_id) or None
        if not account_id:
            raise InvalidArgument(
                "account_id",
                "is required for a token not bound to an account: add ?account_id=acc_… to the URL",
            )
        message = usage_pb.GetCurrentUsageRequest(account_id=account_id)
        _admit(caller, _USAGE_RPC, message)
        await at_account_clock(self._clocks, account_id)
        _, clock_now = await run(test_clocks.clock_time_of_account, self.db, account_id)
        report = await run(usage_reports.current_usage, self.db, account_id, clock_now)
        return rest_json.current_usage(convert.current_usage_out(report))

    async def _unknown(self, request: web.Request) -> web.Response:
        try:
            _check_escapes(request.raw_path)
        except InvalidArgument as exc:
            log.info("http", status=400, code="INVALID_ARGUMENT", error=str(exc))
            return _error_response(400, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.info("http", status=404, code="NOT_FOUND", path=cut(request.path, 200))
        return _error_response(
            404,
            grpc.StatusCode.NOT_FOUND,
            f"no such resource: {cut(request.path)}; this port serves "
            "GET /v1/accounts/{account}/billing and "
            "GET /v1/billing/usage/current",
        )

    def _error(
        self, exc: Exception, fields: dict[str, Any], request_id: str
    ) -> tuple[grpc.StatusCode, web.Response]:
        if isinstance(exc, _Refused):
            code, message = exc.code, str(exc)
        elif isinstance(exc, BillingError):
            code, message = status_code_of(exc), str(exc)
        else:
            code = grpc.StatusCode.INTERNAL
            message = (
                f"internal error (request id {request_id or '?'}); it was logged, please report it"
            )
            log.error("http_failed", exc_info=exc, **fields)
        fields["error"] = message
        status = HTTP_STATUS.get(code, 500)
        response = _error_response(status, code, message)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="billing-svc"'
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            response.headers["Allow"] = "GET, HEAD"
        elif code == grpc.StatusCode.UNAVAILABLE:
            response.headers["Retry-After"] = "1"
        return code, response


def _check_escapes(target: str) -> None:
    """Refuse percent-escapes that are not UTF-8 (``%FF``): aiohttp leaves them undecoded, and
    an id made of them would be looked up, and echoed, as sent."""
    path, _, query = target.partition("?")
    for field, part in (("path", path), ("query", query)):
        for escapes in _PERCENT_ESCAPES.findall(part):
            try:
                unquote_to_bytes(escapes).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(
                    field,
                    f"has percent-escapes that are not UTF-8 text "
                    f"({cut(escapes, 24)}): percent-encode the UTF-8 bytes of "
                    "each character",
                ) from None


def _only_parameters(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Refuse query parameters the call does not take, and any given twice."""
    for name in request.query:
        if name not in allowed:
            takes = f"only {', '.join(allowed)}" if allowed else "none"
            raise InvalidArgument(
                cut(name), f"is not a query parameter of this call (it takes {takes})"
            )
        if len(request.query.getall(name)) > 1:
            raise InvalidArgument(name, "is given more than once")


def _admit(caller: Caller, rpc: str, message: Any) -> None:
    """What the gRPC interceptor checks of a decoded request: text bounds, then an
    account-bound token's account."""
    check_text(message)
    check_account(caller, rpc, message)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    # Our own Server header: aiohttp's names its version and Python's.
    return web.Response(
        status=status,
        text=rest_json.dumps(body),
        content_type="application/json",
        headers={"Server": "billing-svc"},
    )


def _error_response(status: int, code: grpc.StatusCode, message: str) -> web.Response:
    return _json(status, {"error": {"code": code.name, "message": message}})
