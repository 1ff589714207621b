"""Runs the delivery workers: one asyncio task per destination, on one event loop in a thread
of its own, so that a slow or hanging destination only ever holds up its own task (reads,
settles and blocking deliveries run in a thread pool, never on the loop).

The admin service calls `reload` after every change to a destination; the manager then starts,
restarts (definition changed) or stops workers to match the definitions in the engine.

It also sends deletion notices (notices.py) through the running destinations, and watches
backlogs: a destination whose backlog passes its `max_backlog` is logged as lagging (a warning,
once, then again when it has caught up), the alert beside the `destination_lagging` gauge of
/metrics.
"""

from __future__ import annotations

import array
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from tributary._proto.cdp.v1 import destination_pb2

from cdp_server import _core
from cdp_server.destinations.kinds import kind_named
from cdp_server.destinations.mappings import transform_for
from cdp_server.destinations.notices import NoticeSender
from cdp_server.destinations.retry import Clock, RetryPolicy, SystemClock
from cdp_server.destinations.worker import DestinationWorker, Replay, close_destination

log = logging.getLogger(__name__)
T = TypeVar("T")

# Delivery runs below ingest: its threads (the loop and its pool) get this much more niceness,
# so that on a busy machine the scheduler gives ingest's threads the CPU first and destinations
# catch up with what is left (their backlog is the buffer), instead of slowing acknowledgements.
DELIVERY_NICENESS = 10

# How often backlogs are compared with their limits (on the delivery clock: scaled in tests).
LAG_CHECK_SECS = 10.0


@dataclass
class _Running:
    definition: bytes
    worker: DestinationWorker
    task: asyncio.Task[None]


class DeliveryManager:
    def __init__(
        self,
        engine: _core.Engine,
        *,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        threads: int = 32,
    ) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._policy = policy or RetryPolicy()
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(
                max_workers=threads, thread_name_prefix="delivery", initializer=lower_thread_priority
            )
        )
        self._thread = threading.Thread(target=self._run_loop, name="delivery-loop", daemon=True)
        self._running: dict[str, _Running] = {}
        self._lagging: set[str] = set()
        self._lag_watch: concurrent.futures.Future[None] | None = None
        self._notices: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        self._thread.start()
        self.reload()
        self._lag_watch = asyncio.run_coroutine_threadsafe(self._watch_lag(), self._loop)
        sender = NoticeSender(self._engine, self._clock, self._worker_named)
        self._notices = asyncio.run_coroutine_threadsafe(sender.run(), self._loop)

    def _worker_named(self, name: str) -> DestinationWorker | None:
        running = self._running.get(name)
        return running.worker if running is not None else None

    def _run_loop(self) -> None:
        lower_thread_priority()
        self._loop.run_forever()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Runs `coroutine` on the delivery loop from another thread and waits for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def reload(self) -> None:
        """Matches the workers to the engine's definitions (call after any change)."""
        self._run(self._reconcile())

    def replay(self, id: int, name: str, seqs: bytes, *, dead_letters: bool) -> None:
        """Records a replay of log sequences (packed) to destination `name` in the engine (a
        paused or restarted destination finishes it when it runs), and hands it to its worker."""
        number = self._engine.queue_replay(id, seqs, dead_letters)

        async def queue() -> None:
            running = self._running.get(name)
            if running is not None:
                running.worker.queue_replay(Replay(number, array.array("Q", seqs), dead_letters))

        self._run(queue())

    def stop(self, timeout: float = 10.0) -> None:
        """Stops every worker (unsettled batches are delivered again after a restart)."""
        if not self._thread.is_alive():
            return
        try:
            self._run(self._stop_all(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    async def _stop_all(self) -> None:
        for watcher in (self._lag_watch, self._notices):
            if watcher is not None:
                watcher.cancel()
        for name in list(self._running):
            await self._stop(name)

    async def _watch_lag(self) -> None:
        while True:
            await self._clock.sleep(LAG_CHECK_SECS)
            try:
                stats = destination_pb2.DeliveryStatsResponse.FromString(
                    await asyncio.to_thread(self._engine.delivery_stats, b"")
                )
            except _core.ShutDown:
                return
            except Exception:
                log.exception("reading delivery stats failed")
                continue
            self._note_lag(stats.destinations)

    def _note_lag(self, destinations: Sequence[destination_pb2.DestinationStats]) -> None:
        """Logs each change of a destination's lagging state."""
        for d in destinations:
            if d.lagging and d.name not in self._lagging:
                self._lagging.add(d.name)
                log.warning(
                    "destination lagging: its backlog passed max_backlog",
                    extra={"destination": d.name, "backlog": d.backlog, "state": d.state},
                )
            elif not d.lagging and d.name in self._lagging:
                self._lagging.discard(d.name)
                log.info("destination caught up", extra={"destination": d.name, "backlog": d.backlog})
        self._lagging &= {d.name for d in destinations}

    async def _reconcile(self) -> None:
        listed = destination_pb2.ListDestinationsResponse.FromString(
            await asyncio.to_thread(self._engine.list_destinations, b"")
        )
        wanted = {d.name: d for d in listed.destinations}
        for name in [n for n in self._running if n not in wanted]:
            await self._stop(name)
        for name, definition in wanted.items():
            encoded = definition.SerializeToString(deterministic=True)
            running = self._running.get(name)
            if running is not None and running.definition == encoded:
                continue
            await self._stop(name)
            try:
                worker = self._worker(definition)
            except Exception as err:
                log.error("cannot start a destination", extra={"destination": name, "error": str(err)})
                self._engine.set_delivery_status(definition.id, "stopped", f"cannot start: {err}")
                continue
            task = asyncio.create_task(self._supervise(worker), name=f"deliver:{name}")
            self._running[name] = _Running(encoded, worker, task)

    def _worker(self, definition: destination_pb2.Destination) -> DestinationWorker:
        kind = kind_named(definition.kind)
        settings = orjson.loads(definition.settings or b"{}")
        destination = kind.create(definition.name, settings)
        return DestinationWorker(
            self._engine,
            definition,
            destination,
            clock=self._clock,
            policy=self._policy,
            transform=transform_for(definition),
        )

    async def _supervise(self, worker: DestinationWorker) -> None:
        """Runs a worker, restarting it after an unexpected failure (its batch is redelivered)."""
        while True:
            try:
                await worker.run()
            except asyncio.CancelledError:
                raise
            except _core.ShutDown:
                return
            except Exception as err:
                log.exception("delivery worker failed; restarting", extra={"destination": worker.name})
                worker.engine.set_delivery_status(worker.id, "restarting", f"{type(err).__name__}: {err}")
                await self._clock.sleep(1.0)

    async def _stop(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.task
        try:
            await close_destination(running.worker.destination)
        except Exception:
            log.exception("closing a destination failed", extra={"destination": name})
        running.worker.engine.set_delivery_status(running.worker.id, "stopped")


def lower_thread_priority() -> None:
    """Gives the calling thread DELIVERY_NICENESS more niceness (Linux schedules threads apart)."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + DELIVERY_NICENESS, 19))
    except OSError as err:  # not permitted in some sandboxes: deliver at the same priority
        log.warning("cannot lower the delivery threads' priority", extra={"error": str(err)})
