"""gRPC server reflection under both names tools ask for: ``grpc.reflection.v1`` (what
grpcurl, grpcui and Postman try first) and ``grpc.reflection.v1alpha`` (older tools).

grpcio-reflection (1.85) implements only ``v1alpha``. The ``v1`` protocol is the same
protocol under a new package: upstream's ``grpc/reflection/v1/reflection.proto`` has the
same messages with the same field numbers and types, so one servicer answers both, and
the ``v1`` service is registered as a generic handler that decodes and encodes with the
``v1alpha`` messages (tests/unit/gateway/test_health_statuses.py checks the wire identity
field by field). So that reflection can also describe the ``v1`` service itself, its file
is added to the default descriptor pool, derived from the installed ``v1alpha`` file by
renaming the package (docs/api.md "Health and reflection", ADR 0026).
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as v1alpha_reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha, reflection_pb2_grpc as v1alpha_grpc

__all__ = ["SERVICE_NAME", "SERVICE_NAMES", "V1_FILE", "enable_server_reflection"]

V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
#: Both reflection services, as they are listed.
SERVICE_NAMES = (SERVICE_NAME, v1alpha_reflection.SERVICE_NAME)
_METHOD = "ServerReflectionInfo"


def v1_file_proto() -> descriptor_pb2.FileDescriptorProto:
    """``grpc/reflection/v1/reflection.proto`` as a FileDescriptorProto: the installed
    ``v1alpha`` file with the package (and the type references) renamed; its language
    options (Java/Go package names of v1alpha) are dropped."""
    old, new = f".{v1alpha.DESCRIPTOR.package}.", f".{V1_PACKAGE}."
    file = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(file)
    file.name, file.package = V1_FILE, V1_PACKAGE
    file.ClearField("options")
    for message in file.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old):]
    for service in file.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old):]
            method.output_type = new + method.output_type[len(old):]
    return file


def _register_v1_file(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(V1_FILE)
    except KeyError:
        pool.AddSerializedFile(v1_file_proto().SerializeToString())


def enable_server_reflection(service_names, server: grpc.Server) -> None:
    """Serve reflection of ``service_names`` (plus both reflection services) on
    ``server`` under ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``."""
    _register_v1_file(descriptor_pool.Default())
    names = list(dict.fromkeys([*service_names, *SERVICE_NAMES]))
    servicer = v1alpha_reflection.ReflectionServicer(names)
    v1alpha_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, {
        _METHOD: grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=v1alpha.ServerReflectionRequest.FromString,
            response_serializer=v1alpha.ServerReflectionResponse.SerializeToString),
    })])
