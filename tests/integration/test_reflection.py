"""Server reflection answers on grpc.reflection.v1 (what grpcurl and buf curl ask first) and on
v1alpha, with the same descriptors."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.support import Client

Request, Response = reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse

PATHS = {
    "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}


def ask(client: Client, version: str, *requests: Request) -> list[Response]:
    """Requests and responses of v1 are v1alpha's bytes (the same messages, renamed)."""
    call = client.channel.stream_stream(
        PATHS[version],
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=10))


def services(client: Client, version: str) -> set[str]:
    (answer,) = ask(client, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    return {service.name for service in answer.list_services_response.service}


def files_of(answer: Response) -> list[descriptor_pb2.FileDescriptorProto]:
    return [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in answer.file_descriptor_response.file_descriptor_proto
    ]


def test_v1_and_v1alpha_list_the_same_services_both_reflection_services_among_them(
    client: Client,
) -> None:
    listed = services(client, "v1")
    assert listed == services(client, "v1alpha")
    assert {
        "as2aas.billing.v1.BillingService",
        "as2aas.billing.v1.UsageService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= listed


def test_v1_describes_the_billing_service_as_v1alpha_does(client: Client) -> None:
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="as2aas.billing.v1.BillingService"
    )
    (v1,) = ask(client, "v1", request)
    (alpha,) = ask(client, "v1alpha", request)
    assert files_of(v1) == files_of(alpha)
    assert any(s.name == "BillingService" for f in files_of(v1) for s in f.service)


def test_the_v1_reflection_service_describes_itself_under_its_own_package(client: Client) -> None:
    (answer,) = ask(
        client,
        "v1",
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
    )
    (own,) = [f for f in files_of(answer) if f.package == "grpc.reflection.v1"]
    (method,) = own.service[0].method
    assert (method.name, method.input_type, method.output_type) == (
        "ServerReflectionInfo",
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse",
    )
    assert method.client_streaming and method.server_streaming


def test_an_unknown_symbol_is_an_error_response_not_a_failed_call(client: Client) -> None:
    (answer,) = ask(
        client,
        "v1",
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
    )
    assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
