"""Many threads ingesting and reading at once; the stream cap; the live tail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from rpc import IDENTIFY, Rpc, track
from tributary._proto.cdp.v1 import admin_pb2, event_pb2, ingest_pb2

WRITERS = 6
READERS = 4
BATCHES_PER_WRITER = 30
BATCH = 100


def test_many_threads_ingest_and_read_at_once(server: object) -> None:
    rpc = Rpc(server)
    failures: list[BaseException] = []
    done = threading.Event()

    def write(writer: int) -> None:
        try:
            for b in range(BATCHES_PER_WRITER):
                events = [track(f"w{writer}-{b}-{i}", user_id=f"user-{i % 10}") for i in range(BATCH)]
                if b % 2:
                    rpc.send(events)
                else:
                    rpc.stream([events])
        except BaseException as exc:
            failures.append(exc)

    reads = 0

    def read() -> None:
        nonlocal reads
        try:
            while not done.is_set():
                seen = rpc.events("user_id:user-3", limit=50)
                assert len({e.message_id for e in seen}) == len(seen)
                reads += 1
        except BaseException as exc:
            failures.append(exc)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    done.set()
    for thread in readers:
        thread.join(timeout=30)
    assert not failures, failures[:3]
    assert reads > 0
    total = sum(len(rpc.events(f"user_id:user-{u}")) for u in range(10))
    assert total == WRITERS * BATCHES_PER_WRITER * BATCH


def test_streams_past_the_cap_are_refused_with_resource_exhausted(server_factory: object) -> None:
    server = server_factory(env={"TRIBUTARY_MAX_STREAMS": "2"})  # type: ignore[operator]
    rpc = Rpc(server)
    release = threading.Event()

    def held_open() -> Iterator[ingest_pb2.StreamRequest]:
        yield ingest_pb2.StreamRequest(sequence=1, batch=event_pb2.Batch(events=[track("a")]))
        release.wait(30)

    open_streams = [rpc.ingest.Stream(held_open(), metadata=server.ingest_metadata) for _ in range(2)]
    for stream in open_streams:
        assert next(stream).sequence == 1
    with pytest.raises(grpc.RpcError) as caught:
        list(rpc.ingest.Stream(iter([ingest_pb2.StreamRequest(sequence=1)]), metadata=server.ingest_metadata))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    release.set()
    for stream in open_streams:
        list(stream)
    assert rpc.stream([[track("b")]])[0].accepted == 1  # slots are freed


def test_tail_streams_only_new_matching_events(server: object) -> None:
    rpc = Rpc(server)
    rpc.send([track("before")])
    request = admin_pb2.TailRequest(types=[event_pb2.EVENT_TYPE_TRACK], event_names=["Signed Up"])
    tail = rpc.admin.Tail(request, metadata=server.admin_metadata, timeout=20)  # type: ignore[attr-defined]
    time.sleep(0.5)  # the tail starts at the newest committed event
    identify = event_pb2.Event(type=IDENTIFY, message_id="id-1", user_id="u1")
    rpc.send([track("other", name="Viewed"), identify, track("s1", name="Signed Up")])
    rpc.stream([[track("s2", name="Signed Up")]])
    got = [next(tail), next(tail)]
    tail.cancel()
    assert [(r.event.message_id, r.source_id) for r in got] == [("s1", 1), ("s2", 1)]
