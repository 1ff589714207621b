"""Baseline (a): raw py-lmdb, the same event bytes under random 16-byte keys.

Random keys model what an index (dedupe, identity) costs: every put is a B-tree insert at a
random position. 10 k puts per transaction with the default sync (fsync per commit) is
what a careful first implementation would do; no gRPC, decoding or validation at all.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import lmdb

from benchmarks.measurement import Measurement

PUTS_PER_TXN = 10_000
MAP_SIZE = 64 << 30  # sparse; never fills during a run


def measure_raw_lmdb(events: list[bytes], *, seed: int, tmp_root: Path | None = None) -> Measurement:
    """Times writing every event to a fresh environment; keys are generated before the clock."""
    rng = random.Random(seed)
    keys = [rng.randbytes(16) for _ in events]
    with tempfile.TemporaryDirectory(prefix="bench-lmdb-", dir=tmp_root) as data_dir:
        env = lmdb.open(data_dir, map_size=MAP_SIZE)  # default: sync=True, metasync=True
        try:
            started = time.perf_counter()
            for start in range(0, len(events), PUTS_PER_TXN):
                end = start + PUTS_PER_TXN
                with env.begin(write=True) as txn:
                    for key, value in zip(keys[start:end], events[start:end], strict=True):
                        txn.put(key, value)
            seconds = time.perf_counter() - started
            entries = env.stat()["entries"]
        finally:
            env.close()
    return Measurement(
        key="a",
        name="raw py-lmdb (random 16 B keys, 10k puts/txn, fsync)",
        events=entries,
        seconds=seconds,
        details={"puts_per_txn": PUTS_PER_TXN, "commits": -(-len(events) // PUTS_PER_TXN)},
    )
