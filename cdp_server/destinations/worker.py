"""One destination's delivery worker: reads batches from the log after its cursor, delivers
them, and settles them (cursor forward, failures to dead letters) in one durable engine call.

At least once: a batch is settled only after the destination acknowledged it (or its events
were dead-lettered), so a crash or a stop before that delivers it again, with the same
`webhook-id`: a batch that a restart would read the same way (it ended at the read's limits) is
just read again; one that ended at the log's end has its end recorded before it is sent, and the
read after a restart stops there. While batches keep coming, settlements are grouped (at most
every SETTLE_EVERY_SECS; at once for dead letters and when caught up). In order: one batch at a
time, in log order (so in order per profile). The next batch is read while the current one is
delivered (the read releases the GIL in Rust).

Retries (`retry.RetryPolicy`): a `RetryableError` waits and tries the same batch again until the
retry window has passed since its first failure, then dead-letters it with the last error; a
`PermanentError` dead-letters at once; `PayloadTooLarge` splits the batch in halves.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from tributary._proto.cdp.v1 import destination_pb2

from cdp_server import _core
from cdp_server.destinations.base import (
    Batch,
    Destination,
    PayloadTooLarge,
    PermanentError,
    RetryableError,
)
from cdp_server.destinations.retry import Clock, RetryPolicy

log = logging.getLogger(__name__)

# How long a read waits for new events before the worker looks at its state again.
_READ_WAIT_SECS = 0.5
# Replayed events delivered per batch, at most (beside the live ones).
_REPLAY_CHUNK = 500
# How long delivered batches may wait to be settled together while more keep coming: one durable
# commit for several batches. A crash redelivers what was not settled (at least once).
SETTLE_EVERY_SECS = 0.2

Transform: TypeAlias = "Callable[[Batch, array.array[int]], tuple[Batch, array.array[int]]]"


@dataclass
class Outcome:
    """What became of a batch: delivered events and dead ones (with the reason)."""

    delivered: int = 0
    dead_seqs: array.array[int] = field(default_factory=lambda: array.array("Q"))
    dead_ids: list[str] = field(default_factory=list)
    reason: str = ""
    attempts: int = 0
    first_failed: float = 0.0
    retried: int = 0


@dataclass
class Replay:
    """Events to deliver again: log sequences, and whether they are the destination's own dead
    letters (delivered ones then leave the store). Recorded in the engine under `number`, with
    its progress settled chunk by chunk, so that a restart finishes it."""

    number: int
    seqs: array.array[int]
    dead_letters: bool


class DestinationWorker:
    def __init__(
        self,
        engine: _core.Engine,
        definition: destination_pb2.Destination,
        destination: Destination,
        *,
        clock: Clock,
        policy: RetryPolicy,
        transform: Transform | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.definition = definition
        self.name = definition.name
        self.id = definition.id
        self.destination = destination
        self.clock = clock
        self.policy = dataclasses.replace(policy, window_secs=float(definition.retry_window_secs or policy.window_secs))
        self.transform = transform
        self.rng = rng or random.Random()
        self.replays: deque[Replay] = deque()
        self._wake = asyncio.Event()
        self._state = ""

    def queue_replay(self, replay: Replay) -> None:
        """Adds a replay the engine recorded (one already queued, by number, is not added twice)."""
        if len(replay.seqs) and all(queued.number != replay.number for queued in self.replays):
            self.replays.append(replay)
            self._wake.set()

    def _status(self, state: str, error: str | None = None) -> None:
        self._state = state
        self.engine.set_delivery_status(self.id, state, error, len(self.replays))

    async def run(self) -> None:
        """Delivers until cancelled."""
        if self.definition.paused:
            self._status("paused")
            await asyncio.Event().wait()
        position, recorded = await asyncio.to_thread(self.engine.delivery_position, self.id)
        for number, dead_letters, seqs in await asyncio.to_thread(self.engine.pending_replays, self.id):
            self.queue_replay(Replay(number, array.array("Q", seqs), dead_letters))
        settled, settled_at = position, time.monotonic()
        self._status("idle")
        pending = self._read(position, _READ_WAIT_SECS, until=recorded)
        try:
            while True:
                read = await pending
                # Read ahead while this batch is delivered (a live read never returns events
                # before `read.position`, whatever becomes of this batch). Up to where a batch
                # in flight at a stop ended, reads stop there: that batch is read again as it was.
                has_events = read.position > position and len(read.seqs) > 0
                pending = self._read(
                    read.position,
                    0.0 if has_events else _READ_WAIT_SECS,
                    until=recorded if read.position < recorded else 0,
                )
                outcome = Outcome()
                if has_events:
                    if read.short and read.position > recorded:
                        # The read stopped at the log's end: after a restart it could find more.
                        await asyncio.to_thread(self.engine.begin_delivery, self.id, read.position)
                        recorded = read.position
                    outcome = await self._deliver_read(read)
                elif read.filtered:
                    self.engine.report_delivery(self.id, filtered=read.filtered)
                position = max(position, read.position)
                # Settled when something must be recorded now (dead letters), when caught up, or
                # every SETTLE_EVERY_SECS while busy: one durable commit for several batches.
                if position > settled and (
                    len(outcome.dead_seqs) or not has_events or time.monotonic() - settled_at >= SETTLE_EVERY_SECS
                ):
                    await self._settle(position, outcome)
                    settled, settled_at = position, time.monotonic()
                if self.replays:
                    await self._replay_chunk()
                if not has_events and self._state != "idle":
                    self._status("idle")
        finally:
            pending.cancel()
            if position > settled:
                # Stopped (paused, changed, shut down) with delivered batches not yet settled:
                # settle them now rather than send them again.
                try:
                    self.engine.settle(self.id, position)
                except _core.CoreError as err:
                    log.warning("settling on stop failed", extra={"destination": self.name, "error": str(err)})

    def _read(self, after: int, wait: float, until: int = 0) -> asyncio.Future[_core.DeliveryRead]:
        return asyncio.ensure_future(
            asyncio.to_thread(
                self.engine.read_for_delivery,
                self.name,
                after,
                limit=self.definition.batch_size or 100,
                wait_secs=wait,
                until=until,
            )
        )

    async def _replay_chunk(self) -> None:
        replay = self.replays[0]
        chunk, replay.seqs = replay.seqs[:_REPLAY_CHUNK], replay.seqs[_REPLAY_CHUNK:]
        if not len(replay.seqs):
            self.replays.popleft()
        read = await asyncio.to_thread(self.engine.read_seqs_for_delivery, self.name, chunk.tobytes())
        outcome = await self._deliver_read(read)
        delivered = array.array("Q", read.seqs)
        if not replay.dead_letters:
            delivered = array.array("Q")
        elif len(outcome.dead_seqs):
            dead = set(outcome.dead_seqs)
            delivered = array.array("Q", (s for s in delivered if s not in dead))
        await self._settle(0, outcome, delivered, replay=replay)

    async def _deliver_read(self, read: _core.DeliveryRead) -> Outcome:
        """Delivers a read's events (through the mappings, if any) and counts the outcome."""
        seqs = array.array("Q", read.seqs)
        outcome = Outcome()
        if len(seqs):
            batch = Batch(
                self.name,
                read.raw,
                read.message_ids,
                starts=array.array("I", read.starts),
                days=array.array("i", read.days),
            )
            if self.transform is not None:
                batch, seqs = self.transform(batch, seqs)
            if len(batch):
                self._status("delivering")
                outcome = await self._deliver(batch, seqs)
        if len(outcome.dead_seqs):
            # The reason is the destination's last error (DeliveryStats, `cdp destination stats`): a
            # refusal that dead-letters at once is never retried, so nothing else would record it.
            # Set before the settle, so that whoever sees the dead letters sees their reason here.
            self._status(self._state, outcome.reason)
        self.engine.report_delivery(
            self.id,
            delivered=outcome.delivered,
            retried=outcome.retried,
            dead_lettered=len(outcome.dead_seqs),
            filtered=read.filtered,
            received_ms=read.oldest_received_ms,
        )
        if len(outcome.dead_seqs):
            log.warning(
                "events dead-lettered",
                extra={"destination": self.name, "events": len(outcome.dead_seqs), "reason": outcome.reason},
            )
        return outcome

    async def _settle(
        self,
        position: int,
        outcome: Outcome,
        delivered: array.array[int] | None = None,
        *,
        replay: Replay | None = None,
    ) -> None:
        """One durable commit: the cursor to `position` (0: stays), `outcome`'s dead letters
        stored, the dead letters of `delivered` (replayed ones) gone, and `replay`'s progress."""
        await asyncio.to_thread(
            self.engine.settle,
            self.id,
            position,
            dead_seqs=outcome.dead_seqs.tobytes(),
            dead_ids=outcome.dead_ids,
            reason=outcome.reason,
            attempts=outcome.attempts,
            first_failed_ms=int(outcome.first_failed * 1000),
            delivered=(delivered or array.array("Q")).tobytes(),
            replay_number=replay.number if replay else 0,
            replay_remaining=replay.seqs.tobytes() if replay else b"",
        )

    async def _deliver(self, batch: Batch, seqs: array.array[int]) -> Outcome:
        """Delivers `batch`, retrying as the policy says; never raises a delivery error."""
        outcome = Outcome()
        attempts = 0
        first_failed = 0.0
        while True:
            attempts += 1
            try:
                await self._call(batch)
            except PayloadTooLarge as err:
                if len(batch) == 1:
                    return self._dead(outcome, batch, seqs, err.reason, attempts, first_failed or self.clock.now())
                half = len(batch) // 2
                for part, part_seqs in zip(batch.split(), (seqs[:half], seqs[half:]), strict=True):
                    merge(outcome, await self._deliver(part, part_seqs))
                return outcome
            except PermanentError as err:
                return self._dead(outcome, batch, seqs, err.reason, attempts, first_failed or self.clock.now())
            except Exception as err:  # RetryableError, or a custom destination's own failure
                reason = err.reason if isinstance(err, RetryableError) else f"{type(err).__name__}: {err}"
                retry_after = err.retry_after if isinstance(err, RetryableError) else None
                now = self.clock.now()
                first_failed = first_failed or now
                waited = now - first_failed
                if waited >= self.policy.window_secs:
                    reason = f"still failing after {waited:.0f} s of retries: {reason}"
                    return self._dead(outcome, batch, seqs, reason, attempts, first_failed)
                outcome.retried += len(batch)
                self._status("retrying", reason)
                delay = self.policy.delay(attempts, retry_after, self.rng)
                # The last try comes when the window ends, not after it.
                await self.clock.sleep(min(delay, self.policy.window_secs - waited))
            else:
                outcome.delivered += len(batch)
                return outcome

    async def _call(self, batch: Batch) -> None:
        deliver = self.destination.deliver
        if inspect.iscoroutinefunction(deliver):
            await deliver(batch)
        else:
            result: Any = await asyncio.to_thread(deliver, batch)
            if inspect.isawaitable(result):
                await result

    @staticmethod
    def _dead(
        outcome: Outcome,
        batch: Batch,
        seqs: array.array[int],
        reason: str,
        attempts: int,
        first_failed: float,
    ) -> Outcome:
        outcome.dead_seqs.extend(seqs)
        outcome.dead_ids.extend(batch.message_ids)
        outcome.reason = reason
        outcome.attempts = attempts
        outcome.first_failed = first_failed
        return outcome


def merge(into: Outcome, part: Outcome) -> None:
    into.delivered += part.delivered
    into.retried += part.retried
    if len(part.dead_seqs):
        into.dead_seqs.extend(part.dead_seqs)
        into.dead_ids.extend(part.dead_ids)
        into.reason, into.attempts, into.first_failed = part.reason, part.attempts, part.first_failed


async def close_destination(destination: Destination) -> None:
    """Calls the destination's `close` (coroutine or plain), if it has one."""
    close: Callable[[], Awaitable[None] | None] | None = getattr(destination, "close", None)
    if close is None:
        return
    result = close()
    if inspect.isawaitable(result):
        await result
