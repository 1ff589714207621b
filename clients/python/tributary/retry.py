"""When to retry an RPC, and how long to wait first (exponential backoff with full jitter)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

import grpc

# Transient by nature: the server is restarting or overloaded, or the answer did not arrive in time.
# Resending is safe because every event carries its messageId and the server deduplicates on it.
RETRYABLE_CODES: Final = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


@dataclass(frozen=True)
class Backoff:
    """Waits before retry n (0-based): uniform in [0, min(maximum, initial * multiplier**n)] seconds.

    Full jitter spreads the retries of many clients after a server restart instead of having
    them reconnect in lockstep.
    """

    initial: float = 0.1
    multiplier: float = 2.0
    maximum: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.multiplier < 1 or self.maximum < self.initial:
            raise ValueError(f"invalid backoff {self}: need 0 < initial <= maximum and multiplier >= 1")

    def delay(self, retry: int) -> float:
        ceiling = self.initial * self.multiplier ** min(retry, 64)  # min: no float overflow
        return random.uniform(0.0, min(self.maximum, ceiling))


def status_code(error: BaseException) -> grpc.StatusCode | None:
    """The status of a failed call; None for errors that are not RPC outcomes."""
    # grpc raises objects that are both RpcError and Call; the RpcError base alone has no code().
    code = getattr(error, "code", None)
    result = code() if callable(code) else None
    return result if isinstance(result, grpc.StatusCode) else None


def is_retryable(error: BaseException) -> bool:
    return status_code(error) in RETRYABLE_CODES


def channel_options(backoff: Backoff) -> list[tuple[str, int]]:
    """Channel settings that let our own retries reach a restarted server promptly.

    By default a channel whose server went away waits 1 s, then up to 120 s, between connection
    attempts, and fails RPCs immediately in between, which would burn our retries. (The minimum
    connect timeout, `grpc.min_reconnect_backoff_ms`, keeps its 20 s default for slow networks.)
    """
    return [
        ("grpc.initial_reconnect_backoff_ms", max(1, int(backoff.initial * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(1, int(backoff.maximum * 1000))),
    ]
