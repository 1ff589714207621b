"""Baseline (b): a grpcio server that stores nothing, the ceiling the transport allows.

Each request is acknowledged with its sequence number only; the sequence is read from the
first field of the encoded StreamRequest instead of decoding the ~150 KB batch, so almost
all the time measured is grpcio's. ``python -m benchmarks.empty_server --port P``.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from tributary._proto.cdp.v1 import ingest_pb2

from benchmarks.stream_server import port_argument, serve_stream

_SEQUENCE_TAG = 0x08  # field 1, wire type varint


def sequence_of(request: bytes) -> int:
    """The ``sequence`` of an encoded StreamRequest, or 0 when it is not the first field.

    Protobuf encoders write fields in number order, so ``sequence`` (field 1) leads.
    """
    if not request or request[0] != _SEQUENCE_TAG:
        return 0
    value = shift = 0
    for byte in request[1:11]:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7
    return 0


def acknowledge_everything(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield ingest_pb2.StreamResponse(sequence=sequence_of(request)).SerializeToString()


def main() -> None:
    args = port_argument(__doc__.splitlines()[0] if __doc__ else None).parse_args()
    serve_stream(acknowledge_everything, args.port)


if __name__ == "__main__":
    main()
