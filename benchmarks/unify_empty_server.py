"""Baseline of GetProfile over gRPC: a grpcio unary server that looks nothing up.

It answers ``/cdp.v1.ProfileService/GetProfile`` with one fixed, pre-encoded response shaped
like a real profile of the benchmark (three identifiers, two traits), registered with no
deserializer or serializer as the real server's handlers are, and checks no credentials: all
it measures is grpcio's unary path. ``python -m benchmarks.unify_empty_server --port P``.
"""

from __future__ import annotations

import signal
import threading
from concurrent import futures

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tributary._proto.cdp.v1 import profile_pb2

from benchmarks.client import CHANNEL_OPTIONS
from benchmarks.stream_server import port_argument

# More threads than the client keeps calls in flight, so no call ever waits for a thread.
WORKERS = 40


def fixed_response() -> bytes:
    seen = Timestamp(seconds=1_795_881_080, nanos=893_000_000)
    identifiers = [
        profile_pb2.ProfileIdentifier(type=kind, value=value, first_seen=seen, first_message_id=message_id)
        for kind, value, message_id in (
            ("anonymous_id", "09ae4229-cefb-48ec-93de-0b627d51cd79", "1b7a759a-f092-4758-9597-ee0e95d459c9"),
            ("email", "p3.539055@example.com", "fa3d0768-2b4b-47d7-9dd0-6920f242310d"),
            ("loyalty", "L000000031350", "fa3d0768-2b4b-47d7-9dd0-6920f242310d"),
        )
    ]
    profile = profile_pb2.Profile(
        id="tp_3za3qdy17epgwa35yj8q1eqa4b",
        identifiers=identifiers,
        traits=b'{"email":"p3.539055@example.com","plan":"free"}',
    )
    return profile_pb2.GetProfileResponse(profile=profile).SerializeToString()


def build_server(port: int) -> grpc.Server:
    """The server, bound to 127.0.0.1:``port`` and not yet started."""
    response = fixed_response()

    def get_profile(request: bytes, context: grpc.ServicerContext) -> bytes:
        return response

    method = grpc.unary_unary_rpc_method_handler(get_profile, request_deserializer=None, response_serializer=None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS), options=CHANNEL_OPTIONS)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("cdp.v1.ProfileService", {"GetProfile": method}),)
    )
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    return server


def serve(port: int) -> None:
    """Serves until SIGTERM or SIGINT."""
    server = build_server(port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    try:
        stop.wait()
    finally:
        server.stop(grace=1).wait()


def main() -> None:
    args = port_argument(__doc__.splitlines()[0] if __doc__ else None).parse_args()
    serve(args.port)


if __name__ == "__main__":
    main()
