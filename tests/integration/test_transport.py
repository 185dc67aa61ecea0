"""What a call costs before its caller is known: nothing of its body is received; requests are
bounded by size and calls by number, on every method (issue 12, point 7)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from as2aas.billing.v1 import billing_service_pb2 as pb
from as2aas.billing.v1 import usage_service_pb2 as upb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from billing_svc.api.auth import TokenStore
from billing_svc.api.interceptor import ServiceInterceptor
from billing_svc.settings import TokenSpec
from tests.integration.test_raw_bytes import reflected_methods, send, tag, varint
from tests.support import (
    ADMIN,
    READER,
    TOKENS,
    Client,
    ServerThread,
    ServiceProcess,
    auth,
    fresh_database,
    settings_for_tests,
)

MIB = 1024 * 1024
CREATE_ACCOUNT = "/as2aas.billing.v1.BillingService/CreateAccount"
RECORD_USAGE = "/as2aas.billing.v1.UsageService/RecordUsage"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
USAGE_METHODS = {
    "as2aas.billing.v1.UsageService.StreamUsage",
    "as2aas.billing.v1.UsageService.RecordUsage",
}


def padded(size: int) -> bytes:
    """A request of exactly ``size`` bytes that any message type decodes (one unknown field)."""
    for header in range(2, 8):
        body = size - len(tag(1000, 2)) - header
        if len(varint(body)) == header:
            return tag(1000, 2) + varint(body) + b"x" * body
    raise ValueError(size)


def status_of(call: grpc.UnaryUnaryMultiCallable, body: bytes, **kwargs) -> grpc.StatusCode:
    try:
        call(body, timeout=60, **kwargs)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def refusal_of(call: grpc.UnaryUnaryMultiCallable, body: bytes) -> tuple[grpc.StatusCode, str]:
    try:
        call(body, timeout=60)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_a_call_without_a_token_is_refused_before_its_body_is_received(client: Client) -> None:
    # Larger than BILLING_MAX_MESSAGE_BYTES: had the server received it, gRPC would have
    # answered RESOURCE_EXHAUSTED.
    body = padded(17 * MIB)
    for path in (CREATE_ACCOUNT, RECORD_USAGE):
        call = client.channel.unary_unary(path)
        assert status_of(call, body) == grpc.StatusCode.UNAUTHENTICATED
        assert (
            status_of(call, body, metadata=[("authorization", "Bearer wrong")])
            == grpc.StatusCode.UNAUTHENTICATED
        )
        assert status_of(call, body, metadata=READER) == grpc.StatusCode.PERMISSION_DENIED


def test_the_default_limit_is_1_mib_for_every_method_but_the_usage_ones(client: Client) -> None:
    create = client.channel.unary_unary(CREATE_ACCOUNT)
    with pytest.raises(grpc.RpcError) as error:
        create(padded(MIB + 1), metadata=ADMIN, timeout=60)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "1,048,577 bytes" in error.value.details()
    assert "BILLING_MAX_REQUEST_BYTES" in error.value.details()
    assert status_of(create, padded(MIB), metadata=ADMIN) == grpc.StatusCode.INVALID_ARGUMENT
    ack = upb.RecordUsageResponse.FromString(
        client.channel.unary_unary(RECORD_USAGE)(
            padded(8 * MIB), metadata=auth("producer"), timeout=60
        )
    )
    assert (ack.accepted, list(ack.rejected)) == (0, [])


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with fresh_database(str(tmp_path_factory.mktemp("limits"))) as url:
        running = ServerThread(
            settings_for_tests(
                url, max_request_bytes=4096, max_concurrent_rpcs=3, scheduler_interval_seconds=3600
            )
        ).start()
        yield running
        running.stop()


def test_requests_over_the_limit_are_refused_on_every_method_health_and_reflection_too(
    small_limits: ServerThread,
) -> None:
    methods = reflected_methods(small_limits.target)
    assert {m.containing_service.full_name for m in methods} >= {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    with grpc.insecure_channel(small_limits.target) as channel:
        for method in methods:
            if method.full_name == "grpc.health.v1.Health.List":
                continue  # not served (see test_raw_bytes)
            over = send(channel, method, [padded(4097)], ADMIN)
            at = send(channel, method, [padded(4096)], ADMIN)
            if method.full_name in USAGE_METHODS:
                assert (over, at) == (grpc.StatusCode.OK, grpc.StatusCode.OK), method.name
            else:
                assert over == grpc.StatusCode.RESOURCE_EXHAUSTED, method.name
                assert at != grpc.StatusCode.RESOURCE_EXHAUSTED, method.name


def _held_stream(client: Client, release: threading.Event) -> Iterator[upb.StreamUsageResponse]:
    """A StreamUsage stream that has sent one (empty) batch and sends nothing more until
    ``release``."""

    def requests() -> Iterator[upb.StreamUsageRequest]:
        yield upb.StreamUsageRequest(batch_id="first")
        release.wait(60)

    responses = client.usage.StreamUsage(requests(), metadata=auth("producer"), timeout=60)
    assert next(responses).batch_id == "first"  # admitted: it holds a slot
    return responses


def test_calls_beyond_the_concurrency_limit_are_resource_exhausted_and_streams_count(
    small_limits: ServerThread,
) -> None:
    client = Client(small_limits.target)
    release = threading.Event()
    try:
        streams = [_held_stream(client, release) for _ in range(3)]
        with pytest.raises(grpc.RpcError) as error:
            client.billing.ListPlans(pb.ListPlansRequest(), metadata=READER, timeout=10)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "BILLING_MAX_CONCURRENT_RPCS" in error.value.details()
        health = health_pb2_grpc.HealthStub(client.channel)
        with pytest.raises(grpc.RpcError) as error:
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        streams[0].cancel()
        for _ in range(100):  # the server sees the cancellation moments later
            try:
                assert client.billing.ListPlans(
                    pb.ListPlansRequest(), metadata=READER, timeout=10
                ).plans
                break
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                time.sleep(0.05)
        else:
            raise AssertionError("a freed slot was not given to the next call")
    finally:
        release.set()
        client.close()


class ProbeServer:
    """A bare grpc.aio server behind billing-svc's interceptor, serving handlers of the kinds
    billing-svc has none of: unary-stream, stream-unary, and a synchronous one."""

    SERVICE = "as2aas.billing.v1.BillingService"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> int:
        async def echo_stream(request: bytes, context: grpc.aio.ServicerContext):
            yield request

        async def join(requests, context: grpc.aio.ServicerContext) -> bytes:
            return b"".join([raw async for raw in requests])

        def blocking(request: bytes, context: grpc.ServicerContext) -> bytes:
            return request

        interceptor = ServiceInterceptor(max_request_bytes=1024)
        interceptor.activate(
            TokenStore.configured(
                TokenSpec(name=name, token=token, scopes=scopes)
                for name, (token, scopes) in TOKENS.items()
            )
        )
        self.server = grpc.aio.server(interceptors=[interceptor])
        kinds = {
            "ProbeUnaryStream": grpc.unary_stream_rpc_method_handler(echo_stream),
            "ProbeStreamUnary": grpc.stream_unary_rpc_method_handler(join),
            "ProbeSync": grpc.unary_unary_rpc_method_handler(blocking),
        }
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(self.SERVICE, kinds),
                grpc.method_handlers_generic_handler("grpc.health.v1.Health", kinds),
            )
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def probe() -> Iterator[grpc.Channel]:
    server = ProbeServer()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel
    server.stop()


def _code(call, *args, **kwargs) -> grpc.StatusCode:
    try:
        result = call(*args, **kwargs)
        if not isinstance(result, bytes):
            list(result)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_every_kind_of_handler_is_authenticated_or_refused(probe: grpc.Channel) -> None:
    base = f"/{ProbeServer.SERVICE}/"
    unary_stream = probe.unary_stream(base + "ProbeUnaryStream")
    stream_unary = probe.stream_unary(base + "ProbeStreamUnary")
    for metadata, code in (
        ([], grpc.StatusCode.UNAUTHENTICATED),
        (ADMIN, grpc.StatusCode.PERMISSION_DENIED),
    ):  # no scope names it
        assert _code(unary_stream, b"hi", metadata=metadata) == code
        assert _code(stream_unary, iter([b"hi"]), metadata=metadata) == code
    blocking = probe.unary_unary(base + "ProbeSync")
    assert _code(blocking, b"hi", metadata=ADMIN) == grpc.StatusCode.UNIMPLEMENTED


def test_open_methods_of_every_kind_need_no_token_but_keep_the_size_limit(
    probe: grpc.Channel,
) -> None:
    base = "/grpc.health.v1.Health/"
    assert list(probe.unary_stream(base + "ProbeUnaryStream")(b"hi")) == [b"hi"]
    stream_unary = probe.stream_unary(base + "ProbeStreamUnary")
    assert stream_unary(iter([b"a", b"b"])) == b"ab"
    assert _code(stream_unary, iter([b"a", b"x" * 1025])) == grpc.StatusCode.RESOURCE_EXHAUSTED
    unary_stream = probe.unary_stream(base + "ProbeUnaryStream")
    assert _code(unary_stream, b"x" * 1025) == grpc.StatusCode.RESOURCE_EXHAUSTED


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_48_large_calls_without_a_token_leave_the_server_small_and_serving(tmp_path) -> None:
    """The issue's measurement: 48 concurrent 15 MiB calls with no token took the server from
    ~120 MiB to ~1.3 GB."""
    body = padded(15 * MIB)
    with fresh_database(str(tmp_path)) as url:
        service = ServiceProcess(url).start()
        channels = [grpc.insecure_channel(service.target) for _ in range(48)]
        try:
            for path in (CREATE_ACCOUNT, RECORD_USAGE):
                calls = [channel.unary_unary(path) for channel in channels]
                with ThreadPoolExecutor(48) as pool:
                    codes = set(pool.map(status_of, calls, [body] * 48))
                assert codes == {grpc.StatusCode.UNAUTHENTICATED}, path
            peak = _peak_rss_mib(service.process.pid)
            assert peak < 300, f"server peak RSS {peak:.0f} MiB"
            # Health and reflection need no token, so their bodies are read: at most
            # MAX_OPEN_CALLS at once, the rest refused unread.
            calls = [channel.unary_unary(HEALTH_CHECK) for channel in channels]
            with ThreadPoolExecutor(48) as pool:
                refusals = list(pool.map(refusal_of, calls, [body] * 48))
            assert {code for code, _ in refusals} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert any(
                "health and reflection calls are in flight" in details for _, details in refusals
            ), refusals
            health = health_pb2_grpc.HealthStub(channels[0])
            assert (
                health.Check(health_pb2.HealthCheckRequest()).status
                == health_pb2.HealthCheckResponse.SERVING
            )
            client = Client(service.target)
            try:
                assert client.billing.ListPlans(pb.ListPlansRequest(), metadata=READER).plans
                ack = client.usage.RecordUsage(
                    upb.RecordUsageRequest(batch_id="after"), metadata=auth("producer")
                )
                assert ack.batch_id == "after"
            finally:
                client.close()
        finally:
            for channel in channels:
                channel.close()
            service.kill()
