"""Bytes that are no request, sent to every method the server lists by reflection: a clear
``INVALID_ARGUMENT``, never ``UNKNOWN`` or ``INTERNAL`` (issue 12, points 3 and 11)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import ADMIN, ServerThread, fresh_database, settings_for_tests

SERVICES = ("as2aas.billing.v1.BillingService", "as2aas.billing.v1.UsageService")
# grpcio-health-checking's asyncio servicer has no List: a synchronous stub that the interceptor
# does not wrap, so it is refused unread.
NOT_SERVED = {"grpc.health.v1.Health.List": grpc.StatusCode.UNIMPLEMENTED}


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def malformed(method: MethodDescriptor) -> dict[str, bytes]:
    """Bytes no protobuf library decodes as ``method``'s request, each broken another way."""
    payloads = {
        "unknown groups nested 101 deep": tag(1000, 3) * 101 + tag(1000, 4) * 101,
        "a length past the end": tag(1001, 2) + varint(50) + b"short",
        "wire type 7": tag(1002, 7),
        "a varint of 11 bytes": tag(1003, 0) + b"\xff" * 10 + b"\x01",
    }
    strings = [f for f in method.input_type.fields if f.type == FieldDescriptor.TYPE_STRING]
    if strings:
        payloads["invalid UTF-8 in " + strings[0].name] = (
            tag(strings[0].number, 2) + b"\x04ab\xff\xfe"
        )
    return payloads


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server of its own: random bytes may decode as real requests that change things."""
    with fresh_database(str(tmp_path_factory.mktemp("raw"))) as url:
        running = ServerThread(settings_for_tests(url, scheduler_interval_seconds=3600)).start()
        yield running
        running.stop()


@pytest.fixture(scope="module")
def channel(served: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(served.target) as opened:
        yield opened


def reflected_methods(target: str) -> list[MethodDescriptor]:
    """Every method of every service the server at ``target`` lists by reflection."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        return [
            method
            for name in sorted(database.get_services())
            for method in pool.FindServiceByName(name).methods
        ]


@pytest.fixture(scope="module")
def methods(served: ServerThread) -> list[MethodDescriptor]:
    found = reflected_methods(served.target)
    assert {m.containing_service.full_name for m in found} >= set(SERVICES)
    return found


def send(
    channel: grpc.Channel,
    method: MethodDescriptor,
    messages: list[bytes],
    metadata: list[tuple[str, str]],
) -> grpc.StatusCode:
    """Send raw ``messages`` as ``method``'s requests; the call's status code."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path)(iter(messages), metadata=metadata, timeout=20))
        elif method.client_streaming:
            channel.stream_unary(path)(iter(messages), metadata=metadata, timeout=20)
        elif method.server_streaming:
            # Health's Watch never ends when it is served: its first response is enough.
            responses = channel.unary_stream(path)(messages[0], metadata=metadata, timeout=20)
            try:
                next(responses)
            finally:
                responses.cancel()
        else:
            channel.unary_unary(path)(messages[0], metadata=metadata, timeout=20)
    except grpc.RpcError as error:
        assert "Traceback" not in (error.details() or "")
        if error.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
            raise AssertionError((method.full_name, messages, error.details())) from None
        return error.code()
    return grpc.StatusCode.OK


def test_reflection_lists_every_method_of_both_services(methods: list[MethodDescriptor]) -> None:
    from as2aas.billing.v1 import billing_service_pb2, usage_service_pb2

    declared = {
        m.full_name
        for module in (billing_service_pb2, usage_service_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for m in service.methods
    }
    assert declared <= {m.full_name for m in methods}


def test_bytes_that_do_not_decode_are_invalid_argument_on_every_method(
    channel: grpc.Channel, methods: list[MethodDescriptor]
) -> None:
    for method in methods:
        for broken, raw in malformed(method).items():
            code = send(channel, method, [raw], ADMIN)
            expected = NOT_SERVED.get(method.full_name, grpc.StatusCode.INVALID_ARGUMENT)
            assert code == expected, (method.full_name, broken, code)


def test_bytes_that_do_not_decode_get_a_message_a_person_can_act_on(channel: grpc.Channel) -> None:
    call = channel.unary_unary("/as2aas.billing.v1.BillingService/CreateAccount")
    with pytest.raises(grpc.RpcError) as error:
        call(tag(1, 2) + b"\x02\xff\xfe", metadata=ADMIN, timeout=20)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CreateAccount" in error.value.details()
    assert "bad UTF-8" in error.value.details()
    assert "serialized by a protobuf library" in error.value.details()


def test_a_unary_method_called_without_a_request_message_is_invalid_argument(
    channel: grpc.Channel,
) -> None:
    call = channel.stream_unary("/as2aas.billing.v1.BillingService/ListPlans")
    with pytest.raises(grpc.RpcError) as error:
        call(iter([]), metadata=ADMIN, timeout=20)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no request message" in error.value.details()


def test_undecodable_bytes_without_a_token_are_refused_as_unauthenticated(
    channel: grpc.Channel, methods: list[MethodDescriptor]
) -> None:
    """The caller is known before anything is decoded."""
    for method in methods:
        if method.containing_service.full_name not in SERVICES:
            continue
        raw = malformed(method)["unknown groups nested 101 deep"]
        assert send(channel, method, [raw], []) == grpc.StatusCode.UNAUTHENTICATED, method.name


def fuzz(channel: grpc.Channel, method: MethodDescriptor) -> None:
    """Random bytes as ``method``'s requests (one, or up to three on a stream)."""

    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(st.binary(max_size=64), min_size=1, max_size=3))
    def run(messages: list[bytes]) -> None:
        send(channel, method, messages if method.client_streaming else messages[:1], ADMIN)

    run()


def test_random_bytes_to_every_method_never_get_unknown_or_internal(
    channel: grpc.Channel, methods: list[MethodDescriptor]
) -> None:
    for method in methods:
        fuzz(channel, method)
    list_plans = next(m for m in methods if m.name == "ListPlans")
    assert send(channel, list_plans, [b""], ADMIN) == grpc.StatusCode.OK
