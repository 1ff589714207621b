"""Server reflection under both of its names: `grpc.reflection.v1` (which current grpcurl, grpcui
and Postman ask for) and `grpc.reflection.v1alpha` (older tools).

grpcio-reflection implements only v1alpha. The v1 protocol is the same messages in another
package (same fields, same numbers, so the same bytes on the wire), so one servicer answers under
both names. The v1 file itself is registered in the descriptor pool, derived from the v1alpha one,
so that reflection can also describe the v1 service it answers under.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE_NAME: Final[str] = reflection.SERVICE_NAME
V1_SERVICE_NAME: Final = "grpc.reflection.v1.ServerReflection"
_V1_FILE: Final = "grpc/reflection/v1/reflection.proto"


def enable_server_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serves reflection under the v1 and v1alpha names; lists `service_names` and both of those."""
    _register_v1_file()
    servicer = reflection.ReflectionServicer([*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME])
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
            for name in (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
        ]
    )


def _register_v1_file() -> None:
    """Adds grpc/reflection/v1/reflection.proto to the default pool (once per process)."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    old, new = f".{file.package}.", ".grpc.reflection.v1."
    file.name, file.package = _V1_FILE, "grpc.reflection.v1"
    file.ClearField("options")  # v1alpha's Java and Go package names
    for message in file.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # message fields only: a scalar must not get one
                field.type_name = field.type_name.replace(old, new)
    for service in file.service:
        for rpc in service.method:
            rpc.input_type = rpc.input_type.replace(old, new)
            rpc.output_type = rpc.output_type.replace(old, new)
    pool.AddSerializedFile(file.SerializeToString())
