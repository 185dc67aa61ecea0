"""Server reflection, ``grpc.reflection.v1`` beside ``grpc.reflection.v1alpha``.

grpcio-reflection serves only v1alpha, while grpcurl and buf curl ask for v1 first. The two are one
protocol: the published v1 proto is v1alpha's under another package, with the same messages and
field numbers. So v1 is served by grpcio-reflection's own servicer: its requests and responses
cross over as the same bytes, and its descriptor (v1alpha's, renamed) is added to the default
pool, so that reflection describes the v1 service like any other.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha

V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _add_v1_descriptor() -> None:
    """v1alpha's file descriptor under v1's package and file name, in the default pool (once)."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    alpha = v1alpha.DESCRIPTOR.package
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _V1_FILE, V1_PACKAGE
    proto.options.Clear()  # v1alpha's language options name v1alpha packages
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(f".{alpha}."):
                field.type_name = f".{V1_PACKAGE}." + field.type_name.removeprefix(f".{alpha}.")
    for service in proto.service:
        for method in service.method:
            for attribute in ("input_type", "output_type"):
                name = getattr(method, attribute).removeprefix(f".{alpha}.")
                setattr(method, attribute, f".{V1_PACKAGE}.{name}")
    pool.Add(proto)


def enable(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection of ``service_names`` (and of both reflection services) on ``server``."""
    _add_v1_descriptor()
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    servicer = reflection.aio.ReflectionServicer(names)
    for service in (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME):
        handlers = {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=v1alpha.ServerReflectionRequest.FromString,
                response_serializer=v1alpha.ServerReflectionResponse.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_registered_method_handlers(service, handlers)
