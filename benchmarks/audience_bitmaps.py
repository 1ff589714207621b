"""Bitmap AND and OR: the engine's Rust ``roaring`` crate against pyroaring (CRoaring), same sets.

The sets are the Engage benchmark's own at full scale: the profiles with an event of a name
(``Product Viewed``, dense; ``Order Completed``; ``Churned``, sparse) and the profiles with a
trait value (``plan = 'pro'``), as profile numbers. Both libraries read the same portable
serialization. pyroaring is timed from Python (one call an operation); the Rust side runs its loop
in Rust (``cdp_server._core._time_bitmap_op``, which exists for this benchmark), so its figure
has no Python call in it. The two alternate, several rounds each, and the median round counts.
"""

from __future__ import annotations

import operator
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from pyroaring import BitMap

from benchmarks.audience_workload import CHURNED, EVENT_NAMES, ORDER_COMPLETED, AudienceData
from cdp_server import _core

PAGE_VIEWED = "Product Viewed"
# Private to this benchmark, so not in `_core.pyi` (see rust_core/python/src/bitmap_bench.rs).
time_bitmap_op: Callable[[bytes, bytes, str, int], tuple[float, int]] = _core._time_bitmap_op  # type: ignore[attr-defined]


def _event_users(data: AudienceData, name: str) -> BitMap:
    return BitMap(np.unique(data.user[data.name == EVENT_NAMES.index(name)]).astype(np.uint32))


def operand_sets(data: AudienceData) -> dict[str, BitMap]:
    """The sets compared, by the name the report gives them."""
    return {
        f"event {PAGE_VIEWED}": _event_users(data, PAGE_VIEWED),
        f"event {ORDER_COMPLETED}": _event_users(data, ORDER_COMPLETED),
        "trait plan = pro": BitMap(np.flatnonzero(data.traits["plan"] == "pro").astype(np.uint32)),
        f"event {CHURNED}": _event_users(data, CHURNED),
    }


# (left, right) by the names of ``operand_sets``: two dense events, an event and a trait, a trait and a rare event.
PAIRS = (
    (f"event {PAGE_VIEWED}", f"event {ORDER_COMPLETED}"),
    (f"event {ORDER_COMPLETED}", "trait plan = pro"),
    ("trait plan = pro", f"event {CHURNED}"),
)


@dataclass(frozen=True)
class OpRun:
    """One operation on one pair: microseconds per operation of each round, each side."""

    op: str
    left: str
    right: str
    left_size: int
    right_size: int
    result_size: int
    rounds_rust_us: list[float]
    rounds_pyroaring_us: list[float]

    @property
    def rust_us(self) -> float:
        return statistics.median(self.rounds_rust_us)

    @property
    def pyroaring_us(self) -> float:
        return statistics.median(self.rounds_pyroaring_us)

    @property
    def ratio(self) -> float:
        """How many times faster the Rust side is (pyroaring's time over Rust's)."""
        return self.pyroaring_us / self.rust_us if self.rust_us > 0 else 0.0


def _pyroaring_seconds(apply: Callable[[], BitMap], operations: int) -> float:
    started = time.perf_counter()
    for _ in range(operations):
        apply()
    return time.perf_counter() - started


def compare(sets: dict[str, BitMap], *, operations: int, rounds: int) -> list[OpRun]:
    """Every pair of ``PAIRS``, AND then OR: ``rounds`` alternating rounds of ``operations``
    operations a side. Fails when the two libraries' results differ in size."""
    runs = []
    for left_name, right_name in PAIRS:
        left, right = sets[left_name], sets[right_name]
        left_bytes, right_bytes = left.serialize(), right.serialize()
        for op in ("and", "or"):
            expected = left & right if op == "and" else left | right
            apply: Callable[[], BitMap] = partial(operator.and_ if op == "and" else operator.or_, left, right)
            rust_us, py_us = [], []
            for _ in range(rounds):
                seconds, size = time_bitmap_op(left_bytes, right_bytes, op, operations)
                if size != len(expected):
                    raise RuntimeError(
                        f"{left_name} {op} {right_name}: Rust found {size:,}, pyroaring {len(expected):,}"
                    )
                rust_us.append(seconds / operations * 1e6)
                py_us.append(_pyroaring_seconds(apply, operations) / operations * 1e6)
            runs.append(OpRun(op, left_name, right_name, len(left), len(right), len(expected), rust_us, py_us))
    return runs
