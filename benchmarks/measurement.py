"""What one benchmarked system achieved: throughput and acknowledgement latency."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(q * len(sorted_values) / 100)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class AckLatency:
    """Per-batch time from handing the batch to gRPC to receiving its ack, in milliseconds."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def from_seconds(cls, latencies_s: Sequence[float]) -> AckLatency:
        ms = sorted(x * 1000 for x in latencies_s)
        mean = sum(ms) / len(ms) if ms else 0.0
        return cls(percentile(ms, 50), percentile(ms, 99), ms[-1] if ms else 0.0, mean)


@dataclass(frozen=True)
class Measurement:
    """One system's run over the workload.

    Attributes:
        key: Short identifier ("a", "b", "c", "real").
        name: Human-readable name for the report.
        events: Events written or acknowledged.
        seconds: Wall-clock time of the timed section.
        ack: Ack latency, for systems driven by the streaming client.
        details: Anything else worth keeping in ingest.json (counts, settings).
    """

    key: str
    name: str
    events: int
    seconds: float
    ack: AckLatency | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 4)
        data["events_per_s"] = round(self.events_per_s, 1)
        if self.ack:
            data["ack"] = {name: round(value, 3) for name, value in asdict(self.ack).items()}
        return data
