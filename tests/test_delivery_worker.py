"""The delivery worker in-process, over a real engine, with a destination of its own (the custom
destination contract: a class with `deliver(batch)`): what it settles, and when."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tributary._proto.cdp.v1 import admin_pb2, destination_pb2, event_pb2, ingest_pb2

from cdp_server import _core
from cdp_server.destinations import worker as worker_module
from cdp_server.destinations.base import Batch
from cdp_server.destinations.retry import RetryPolicy, SystemClock
from cdp_server.destinations.worker import DestinationWorker


class StopsAtThirdBatch:
    """Takes two batches, then holds the third until the test ends."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.holding = asyncio.Event()

    async def deliver(self, batch: Batch) -> None:
        self.batches.append(batch)
        if len(self.batches) == 3:
            self.holding.set()
            await asyncio.Event().wait()


def test_a_stopped_worker_settles_what_was_delivered_and_not_the_batch_in_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settlements grouped for an hour: only the stop can settle the two delivered batches.
    monkeypatch.setattr(worker_module, "SETTLE_EVERY_SECS", 3600.0)
    engine = _core.Engine(tmp_path / "data")
    try:
        source = admin_pb2.Source.FromString(engine.create_source("s", b"k" * 32)).id
        events = [
            event_pb2.Event(type=event_pb2.EVENT_TYPE_TRACK, message_id=f"m{i}", user_id="u", event="E")
            for i in range(500)
        ]
        engine.send(source, ingest_pb2.SendRequest(batch=event_pb2.Batch(events=events)).SerializeToString())
        asked = destination_pb2.Destination(name="d", kind="custom", batch_size=100, from_beginning=True)
        definition = destination_pb2.DestinationResponse.FromString(
            engine.create_destination(destination_pb2.CreateDestinationRequest(destination=asked).SerializeToString())
        ).destination
        destination = StopsAtThirdBatch()

        async def scenario() -> Any:
            worker = DestinationWorker(engine, definition, destination, clock=SystemClock(), policy=RetryPolicy())
            task = asyncio.create_task(worker.run())
            await asyncio.wait_for(destination.holding.wait(), 10)
            assert engine.delivery_position(definition.id)[0] == 0, "nothing settled while busy"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert [len(b) for b in destination.batches] == [100, 100, 100]
        cursor, _ = engine.delivery_position(definition.id)
        last_delivered = destination.batches[1].message_ids[-1]
        assert last_delivered == "m199" and cursor == 200, "the two delivered batches, not the one in hand"
    finally:
        engine.close()
