"""What a server says about itself: health checks and server reflection (v1 and v1alpha), for
the services it serves and no other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

if TYPE_CHECKING:
    from conftest import ServerProcess

SERVED = {"cdp.v1.IngestService", "cdp.v1.ProfileService", "cdp.v1.AdminService", "cdp.v1.AudienceService"}
REFLECTION = {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}


def reflect(
    channel: grpc.Channel, service: str, requests: list[reflection_pb2.ServerReflectionRequest]
) -> list[reflection_pb2.ServerReflectionResponse]:
    """A raw ServerReflectionInfo call under `service`. The v1 and v1alpha messages are the same
    bytes on the wire (same fields and numbers in another package), so the v1alpha classes encode
    and decode both."""
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=10))


def test_health_reports_serving_for_the_served_services_only(server: ServerProcess) -> None:
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ["", *SERVED]:
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        # A service the server does not have: health does not claim it, and calls are unimplemented.
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(service="cdp.v1.JourneyService"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        unserved = channel.unary_unary("/cdp.v1.JourneyService/ListJourneys")
        with pytest.raises(grpc.RpcError) as caught:
            unserved(b"", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", sorted(REFLECTION))
def test_reflection_lists_and_describes_the_served_services(server: ServerProcess, service: str) -> None:
    with server.channel() as channel:
        (listed,) = reflect(channel, service, [reflection_pb2.ServerReflectionRequest(list_services="")])
        names = {s.name for s in listed.list_services_response.service}
        assert names == SERVED | REFLECTION | {"grpc.health.v1.Health"}

        symbols = ["cdp.v1.ProfileService", *sorted(REFLECTION)]
        replies = reflect(
            channel, service, [reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in symbols]
        )
    files = []
    for reply in replies:
        assert not reply.HasField("error_response"), reply.error_response
        first = reply.file_descriptor_response.file_descriptor_proto[0]
        files.append(descriptor_pb2.FileDescriptorProto.FromString(first).name)
    assert files == [
        "cdp/v1/profile.proto",
        "grpc/reflection/v1/reflection.proto",
        "grpc_reflection/v1alpha/reflection.proto",
    ]
