"""When a failed delivery is tried again: exponential backoff with jitter, from 10 s to 300 s,
honouring the destination's `Retry-After`, for a window (default 4 hours, Segment's) after
which the batch's events become dead letters.

The clock is injectable so that tests can run a 4-hour window in seconds (`ScaledClock`, set
by the `delivery_time_scale` setting).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ScaledClock:
    """Time that runs `scale` times faster than the wall clock (tests: at 3,600 a 4-hour retry
    window passes in 4 seconds, and every backoff shrinks by as much)."""

    def __init__(self, scale: float) -> None:
        self._scale = scale
        self._start = time.time()
        self._started = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._started) * self._scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self._scale)


@dataclass(frozen=True)
class RetryPolicy:
    first_delay_secs: float = 10.0
    max_delay_secs: float = 300.0
    window_secs: float = 4 * 3600.0
    # Each delay is the exponential step times a factor drawn from this range.
    jitter: tuple[float, float] = (0.8, 1.2)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before try `attempt + 1` after try `attempt` (1-based) failed."""
        step = min(self.max_delay_secs, self.first_delay_secs * 2.0 ** min(attempt - 1, 30))
        jittered = min(self.max_delay_secs, max(self.first_delay_secs, step * rng.uniform(*self.jitter)))
        # A destination that says when to come back is not asked sooner.
        return max(jittered, retry_after or 0.0)
