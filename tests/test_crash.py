"""kill -9 during a bulk stream: every acknowledged event is stored exactly once.

The client streams 50k events in numbered batches; a seeded schedule kills the server five
times at random instants; after each restart the client resends every batch not yet acked,
with the same messageIds. Set CRASH_SEED to replay a failure."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Iterator

import grpc
from rpc import Rpc, track
from tributary._proto.cdp.v1 import event_pb2, ingest_pb2

EVENTS = 50_000
BATCH = 500
USERS = 50
KILLS = 5


def make_batches(rng: random.Random) -> dict[int, list[event_pb2.Event]]:
    events = [
        track(f"evt-{i}", user_id=f"user-{rng.randrange(USERS)}", properties={"i": i, "v": rng.random()})
        for i in range(EVENTS)
    ]
    return {n + 1: events[n * BATCH : (n + 1) * BATCH] for n in range(EVENTS // BATCH)}


def stream_unacked(
    rpc: Rpc, batches: dict[int, list[event_pb2.Event]], acked: set[int], stop: threading.Event | None = None
) -> None:
    """Streams every unacked batch; records acks as they come. Returns when the stream ends."""

    def requests() -> Iterator[ingest_pb2.StreamRequest]:
        for sequence in sorted(set(batches) - acked):
            if stop is not None and stop.is_set():
                return
            yield ingest_pb2.StreamRequest(sequence=sequence, batch=event_pb2.Batch(events=batches[sequence]))

    try:
        for ack in rpc.ingest.Stream(requests(), metadata=rpc.server.ingest_metadata, timeout=120):
            assert not ack.rejections, ack.rejections
            acked.add(ack.sequence)
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), exc  # type: ignore[attr-defined]


def test_acked_events_survive_kill_9_exactly_once(server: object) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    batches = make_batches(rng)
    acked: set[int] = set()
    acked_before_kill: list[int] = []
    for _ in range(KILLS):
        rpc = Rpc(server)
        worker = threading.Thread(target=stream_unacked, args=(rpc, batches, acked))
        worker.start()
        threading.Event().wait(rng.uniform(0.05, 0.6))
        server.kill()  # type: ignore[attr-defined]
        worker.join(timeout=60)
        assert not worker.is_alive(), f"stream did not end after the kill (seed {seed})"
        acked_before_kill.append(len(acked))
        rpc.close()
        server.start()  # type: ignore[attr-defined]
    rpc = Rpc(server)
    stream_unacked(rpc, batches, acked)
    assert acked == set(batches), f"seed {seed}: unacked batches {sorted(set(batches) - acked)[:5]}"
    stored = Counter(e.message_id for user in range(USERS) for e in rpc.events(f"user_id:user-{user}"))
    duplicates = [m for m, n in stored.items() if n > 1]
    assert not duplicates, f"seed {seed}: stored twice: {duplicates[:5]}"
    assert len(stored) == EVENTS, f"seed {seed}: {EVENTS - len(stored)} acked events missing"
    assert acked_before_kill[-1] > 0, f"seed {seed}: no batch was acked before the kills: the test proved nothing"
