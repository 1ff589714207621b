"""SIGTERM while streams are active: health goes NOT_SERVING, the stream closes with
UNAVAILABLE after its acks, acked data stays, and the process exits within the grace period."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rpc import Rpc, track
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

GRACE_SECS = 3


def test_sigterm_drains_streams_and_keeps_acked_data(server_factory: object) -> None:
    server = server_factory(env={"TRIBUTARY_SHUTDOWN_GRACE_SECS": str(GRACE_SECS)})  # type: ignore[operator]
    rpc = Rpc(server)
    statuses: list[int] = []
    watch = health_pb2_grpc.HealthStub(server.channel()).Watch(health_pb2.HealthCheckRequest())

    def watch_health() -> None:
        with contextlib.suppress(grpc.RpcError):
            statuses.extend(reply.status for reply in watch)

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    sent = 0

    def requests() -> Iterator[ingest_pb2.StreamRequest]:
        nonlocal sent
        for sequence in range(1, 10_000):  # a slow, endless producer
            events = [track(f"m{sequence}-{i}") for i in range(100)]
            sent = sequence
            yield ingest_pb2.StreamRequest(sequence=sequence, batch=event_pb2.Batch(events=events))
            time.sleep(0.02)

    acked: list[int] = []
    error: list[grpc.RpcError] = []

    def stream() -> None:
        try:
            acked.extend(a.sequence for a in rpc.ingest.Stream(requests(), metadata=server.ingest_metadata))
        except grpc.RpcError as exc:
            error.append(exc)

    streamer = threading.Thread(target=stream)
    streamer.start()
    time.sleep(1.0)
    assert acked, "no ack before shutdown"
    started = time.monotonic()
    exit_code = server.stop(timeout=GRACE_SECS + 10)
    took = time.monotonic() - started
    streamer.join(timeout=10)
    watcher.join(timeout=10)
    assert exit_code == 0
    assert took < GRACE_SECS + 2, f"shutdown took {took:.1f}s"
    assert error and error[0].code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses, statuses
    assert acked == sorted(acked) and acked[0] == 1 and len(acked) < sent
    server.start()
    stored = {e.message_id for e in Rpc(server).events("user_id:u1")}
    assert {f"m{s}-{i}" for s in acked for i in range(100)} <= stored
