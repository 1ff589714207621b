"""Scaffolding shared by the baseline servers: one raw-bytes ``Stream`` handler on 127.0.0.1.

The handler is registered with no request deserializer and no response serializer, as the
real server's hot path is, so the baselines pay exactly the costs they choose to pay.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from benchmarks.client import CHANNEL_OPTIONS

StreamHandler = Callable[[Iterator[bytes], grpc.ServicerContext], Iterator[bytes]]


def port_argument(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="port to listen on, on 127.0.0.1")
    return parser


def serve_stream(handler: StreamHandler, port: int) -> None:
    """Serves ``/cdp.v1.IngestService/Stream`` with ``handler`` until SIGTERM or SIGINT."""
    method = grpc.stream_stream_rpc_method_handler(handler, request_deserializer=None, response_serializer=None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=CHANNEL_OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("cdp.v1.IngestService", {"Stream": method}),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    try:
        stop.wait()
    finally:
        server.stop(grace=1).wait()
