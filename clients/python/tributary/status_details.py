"""Rich error details (google.rpc.Status in `grpc-status-details-bin`) of a failed Send.

The server answers a batch with rejected events with INVALID_ARGUMENT, listing the bad fields as
a google.rpc.BadRequest and, when small enough, attaching the per-event SendResponse. Decoded by
hand so the client needs no googleapis-common-protos.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from tributary._proto.cdp.v1 import ingest_pb2
from tributary._wire import fields

_DETAILS_KEY = "grpc-status-details-bin"
_STATUS_DETAILS = 3  # google.rpc.Status.details (repeated google.protobuf.Any)
_BAD_REQUEST = "google.rpc.BadRequest"
_BAD_REQUEST_VIOLATIONS = 1  # BadRequest.field_violations; FieldViolation: field = 1, description = 2


def send_response(error: grpc.RpcError) -> ingest_pb2.SendResponse | None:
    """The per-event results attached to the error, if the server attached them."""
    for detail in _details(error):
        if detail.TypeName() == ingest_pb2.SendResponse.DESCRIPTOR.full_name:
            response = ingest_pb2.SendResponse()
            detail.Unpack(response)
            return response
    return None


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) pairs, e.g. ("events[3].userId", "userId or anonymousId is required")."""
    violations = []
    for detail in _details(error):
        if detail.TypeName() != _BAD_REQUEST:
            continue
        for number, violation in fields(detail.value):
            if number == _BAD_REQUEST_VIOLATIONS and isinstance(violation, bytes):
                parts = {n: v for n, v in fields(violation) if isinstance(v, bytes)}
                violations.append((_text(parts.get(1, b"")), _text(parts.get(2, b""))))
    return violations


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _details(error: grpc.RpcError) -> Iterator[any_pb2.Any]:
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                for number, detail in fields(value):
                    if number == _STATUS_DETAILS and isinstance(detail, bytes):
                        yield any_pb2.Any.FromString(detail)
            except (ValueError, DecodeError):  # undecodable details: the status code and message still stand
                return
