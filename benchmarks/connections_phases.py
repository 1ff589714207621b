"""Where a webhook delivery's time goes: ``python -m benchmarks.connections_phases [--events N] [--no-sync]``.

The connections benchmark's webhook figure, taken apart: the same workload in an in-process engine (durable,
as `cdp serve` opens it; `--no-sync`: its commits not fsync'd, as `--unsafe-benchmark-mode`), a webhook
destination from the log's beginning towards the benchmark's sink (its own process), delivered by the
server's own `DestinationWorker` and `WebhookDestination` on an event loop. The engine sits behind a proxy
that times each call the worker makes (`read_for_delivery`, `settle`, `report_delivery`,
`set_delivery_status`), and the destination's `deliver` is timed too. Prints each one's calls, seconds in
all, mean milliseconds and share of the wall time: the read runs ahead, while the batch before it is
delivered, so the shares may add up to more than 100 %. `--cprofile FILE` also writes a cProfile of the
event loop's thread (`python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tributary._proto.cdp.v1 import admin_pb2, destination_pb2, ingest_pb2

from benchmarks import workload
from benchmarks.connections_sink import running_sink, tally
from cdp_server import _core
from cdp_server.destinations.retry import RetryPolicy, SystemClock
from cdp_server.destinations.webhook import WebhookDestination, WebhookKind, WebhookSettings
from cdp_server.destinations.worker import DestinationWorker

DEFAULT_EVENTS = 20_000
DEFAULT_BATCH_SIZE = 100
TIMED = ("read_for_delivery", "settle", "report_delivery", "set_delivery_status")


class Timings:
    """Calls and seconds by name, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.calls[name] += 1
            self.seconds[name] += seconds


class TimedEngine:
    """The engine, with the calls of `TIMED` timed (everything else passed through)."""

    def __init__(self, engine: _core.Engine, timings: Timings) -> None:
        self._engine = engine
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._engine, name)
        if name not in TIMED:
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._timings.add(name, time.perf_counter() - started)

        return timed


def _ingest(engine: _core.Engine, batches: list[bytes]) -> int:
    digest = hashlib.sha256(b"phases").digest()
    source = admin_pb2.Source.FromString(engine.create_source("phases", digest)).id
    accepted = 0
    for batch in batches:
        accepted += ingest_pb2.StreamResponse.FromString(engine.submit_stream(source, batch).wait()).accepted
    return accepted


async def _deliver_all(worker: DestinationWorker, engine: _core.Engine, last_seq: int) -> float:
    """Seconds from the worker's start until its cursor passed `last_seq`."""
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    try:
        while engine.delivery_position(worker.id)[0] < last_seq:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return time.perf_counter() - started
    finally:
        task.cancel()


def run(events: int, batch_size: int, seed: int, *, no_sync: bool, cprofile: Path | None = None) -> dict[str, Any]:
    """Delivers the workload's `events` once; the wall time, the sink's window and each phase's calls and seconds."""
    _, workload_path = workload.load_or_generate(events, seed)
    batches = workload.load_batches(workload_path)
    timings = Timings()
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp, running_sink(Path(tmp)) as (_, url):
        engine = _core.Engine(Path(tmp) / "data", unsafe_no_sync=no_sync)
        try:
            if _ingest(engine, batches) != events:
                raise RuntimeError("the engine did not accept every event")
            settings = WebhookKind().validate({"url": f"{url}/phases", "allow": ["127.0.0.1"]})
            asked = destination_pb2.Destination(
                name="phases",
                kind="webhook",
                settings=json.dumps(settings).encode(),
                batch_size=batch_size,
                from_beginning=True,
            )
            request = destination_pb2.CreateDestinationRequest(destination=asked)
            definition = destination_pb2.DestinationResponse.FromString(
                engine.create_destination(request.SerializeToString())
            ).destination
            destination = WebhookDestination("phases", WebhookSettings.parse(settings))
            original: Callable[..., Any] = destination.deliver

            async def deliver(batch: Any) -> None:
                started = time.perf_counter()
                try:
                    await original(batch)
                finally:
                    timings.add("deliver (POST)", time.perf_counter() - started)

            destination.deliver = deliver  # type: ignore[method-assign]
            worker = DestinationWorker(
                TimedEngine(engine, timings),  # type: ignore[arg-type]
                definition,
                destination,
                clock=SystemClock(),
                policy=RetryPolicy(),
            )
            profiler = cProfile.Profile() if cprofile else None

            async def main() -> float:
                if profiler:
                    profiler.enable()
                try:
                    return await _deliver_all(worker, engine, engine.last_seq())
                finally:
                    if profiler:
                        profiler.disable()
                    await destination.close()

            wall = asyncio.run(main())
            if profiler and cprofile:
                profiler.dump_stats(cprofile)
            received = tally(url, "/phases")
        finally:
            engine.close()
    if received.events != events:
        raise RuntimeError(f"the sink received {received.events} of {events} events")
    return {
        "events": events,
        "batch_size": batch_size,
        "fsync": not no_sync,
        "wall_s": wall,
        "events_per_s": events / wall,
        "sink_window_s": received.last_at - received.first_at,
        "phases": {name: {"calls": timings.calls[name], "seconds": timings.seconds[name]} for name in timings.calls},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.connections_phases", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    parser.add_argument("--no-sync", action="store_true", help="the engine's commits not fsync'd")
    parser.add_argument("--cprofile", type=Path, help="write a cProfile of the event loop's thread here")
    args = parser.parse_args(argv)
    found = run(args.events, args.batch_size, args.seed, no_sync=args.no_sync, cprofile=args.cprofile)
    wall = found["wall_s"]
    print(
        f"{found['events']:,} events, batches of {found['batch_size']}, fsync {'on' if found['fsync'] else 'off'}: "
        f"{found['events_per_s']:,.0f} events/s ({wall:.2f} s; the sink's window {found['sink_window_s']:.2f} s)"
    )
    for name, phase in sorted(found["phases"].items(), key=lambda item: -item[1]["seconds"]):
        mean_ms = phase["seconds"] / max(phase["calls"], 1) * 1000
        print(
            f"  {name:<22} {phase['calls']:>7,} calls {phase['seconds']:>8.2f} s  {mean_ms:>7.3f} ms each"
            f"  {phase['seconds'] / wall:>6.1%} of the wall time"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
