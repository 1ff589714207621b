"""Sends deletion notices (deletion.py) to the destinations that accept one, and tells the engine what became of each:
the receipt's `destination <name>` stage goes FINISHED, or FAILED (the regulation then ends PARTIAL_SUCCESS).

A notice waits until its destination's cursor has passed the person's last removed event, so that no batch of theirs
still on its way lands after the notice (a paused destination has nothing on its way). It then goes through the
destination's own instance (its worker's: same connection, same signing key) and is retried like a batch, with the
destination's retry policy and window; a `PermanentError`, a window that runs out, or a destination deleted before it
was told all end the notice FAILED with the reason. The engine keeps each notice until it is settled, so a restart
sends it again (`delete` is idempotent). Each notice is recorded as sent before its first call: when a restart sends it
again, the receipt says so, since what the earlier attempt deleted (a warehouse's rows) is no longer there to count.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cdp_server import _core
from cdp_server.destinations.base import DeliveryError, PermanentError, RetryableError
from cdp_server.destinations.deletion import DeletionNotice, accepts_deletion
from cdp_server.destinations.retry import Clock
from cdp_server.destinations.worker import DestinationWorker

log = logging.getLogger(__name__)

# How often the engine is asked for notices (on the delivery clock).
POLL_SECS = 1.0


@dataclass
class _Attempts:
    first_failed: float = 0.0
    count: int = 0
    next_try: float = 0.0
    last_error: str = ""
    # Recorded as sent (start_deletion_notice) by this process; sent by an earlier one.
    marked: bool = False
    resumed: bool = False


@dataclass
class NoticeSender:
    engine: _core.Engine
    clock: Clock
    # The running worker of a destination, by name (None: no such destination now).
    worker_of: Callable[[str], DestinationWorker | None]
    rng: random.Random = field(default_factory=random.Random)
    _attempts: dict[tuple[int, str], _Attempts] = field(default_factory=dict)

    async def run(self) -> None:
        """Sends what is due every POLL_SECS until cancelled."""
        while True:
            try:
                await self.send_due()
            except _core.ShutDown:
                return
            except Exception:
                log.exception("sending deletion notices failed (tried again)")
            await self.clock.sleep(POLL_SECS)

    async def send_due(self) -> None:
        for regulation, name, through, payload, sent in await asyncio.to_thread(self.engine.deletion_notices):
            await self._send(regulation, name, through, payload, sent)

    async def _send(self, regulation: int, name: str, through: int, payload: bytes, sent: bool) -> None:
        key = (regulation, name)
        attempts = self._attempts.setdefault(key, _Attempts(resumed=sent))
        if self.clock.now() < attempts.next_try:
            return
        worker = self.worker_of(name)
        if worker is None:
            await self._finish(key, ok=False, detail="the destination was deleted before its notice was sent")
            return
        if not accepts_deletion(worker.destination):
            await self._finish(key, ok=False, detail=f"a {worker.definition.kind} destination takes no notice")
            return
        cursor, _ = await asyncio.to_thread(self.engine.delivery_position, worker.id)
        if cursor < through and not worker.definition.paused:
            return  # its batches of the person are still on their way
        if not attempts.marked:
            await asyncio.to_thread(self.engine.start_deletion_notice, regulation, name)
            attempts.marked = True
        try:
            await worker.destination.delete(DeletionNotice.from_json(payload))
        except (RetryableError, PermanentError, ValueError) as error:
            self._failed(key, worker, error)
            if isinstance(error, RetryableError):
                window = worker.policy.window_secs
                if self.clock.now() - attempts.first_failed < window:
                    return
                detail = f"gave up after {attempts.count} tries over {window:.0f} s: {attempts.last_error}"
            else:
                detail = f"refused: {attempts.last_error}"
            await self._finish(key, ok=False, detail=detail)
            return
        detail = _what_was_done(worker)
        if attempts.resumed:
            detail += " (sent again after a restart: the attempt before it may have done the deleting)"
        await self._finish(key, ok=True, detail=detail)

    def _failed(self, key: tuple[int, str], worker: DestinationWorker, error: Exception) -> None:
        attempts = self._attempts[key]
        now = self.clock.now()
        if attempts.count == 0:
            attempts.first_failed = now
        attempts.count += 1
        attempts.last_error = error.reason if isinstance(error, DeliveryError) else str(error)
        retry_after = error.retry_after if isinstance(error, RetryableError) else None
        attempts.next_try = now + worker.policy.delay(attempts.count, retry_after, self.rng)
        log.warning(
            "a deletion notice failed",
            extra={
                "destination": key[1],
                "regulation": key[0],
                "attempt": attempts.count,
                "error": attempts.last_error,
            },
        )

    async def _finish(self, key: tuple[int, str], *, ok: bool, detail: str) -> None:
        self._attempts.pop(key, None)
        await asyncio.to_thread(self.engine.finish_deletion_notice, key[0], key[1], ok, detail)
        log.info("deletion notice settled", extra={"destination": key[1], "regulation": key[0], "ok": ok})


def _what_was_done(worker: DestinationWorker) -> str:
    """The receipt's detail for a destination that took its notice."""
    deleted = getattr(worker.destination, "last_deletion", None)
    if isinstance(deleted, dict):
        rows = sum(deleted.values())
        return f"{rows} rows deleted from {len(deleted)} tables"
    return "notice delivered (signed)"
