"""Where the memory goes: the ingest workload through the engine in a process of its own, then
the engine's own account of its structures (``Engine.memory_usage``: the identity graph by part,
the dedupe window, the identifier index's buffers) beside the process's growth in anonymous
resident memory. The server cannot be asked for that split over gRPC yet, and the in-process
engine is the same code without grpcio's buffers, so the difference between this growth and
the server's is what serving adds.

Run as ``python -m benchmarks.memory_parts WORKLOAD_PATH TMP_DIR``: prints one JSON object.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import workload
from benchmarks.unify_engine import ingest, open_engine

# The indexer flushes on a timer: a moment after the last ack its buffers are empty.
SETTLE_S = 3.0


def rss_anon_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def measure_memory_parts(workload_path: Path, tmp_root: Path | None) -> dict[str, Any]:
    """Runs the measurement in a fresh interpreter (so nothing else this process holds is counted)."""
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="memory-parts-") as data_dir:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory_parts", str(workload_path), data_dir],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _measure(workload_path: Path, data_dir: Path) -> dict[str, Any]:
    batches = workload.load_batches(workload_path)
    with open_engine(data_dir) as (engine, source):
        gc.collect()
        before = rss_anon_bytes()
        events = ingest(engine, source, batches).accepted
        time.sleep(SETTLE_S)
        gc.collect()
        after = rss_anon_bytes()
        parts = engine.memory_usage()
    return {
        "events": events,
        "rss_growth_bytes": after - before,
        "rss_bytes_per_event": round((after - before) / max(1, events), 1),
        "parts_bytes": parts,
        "parts_bytes_per_event": {name: round(size / max(1, events), 1) for name, size in parts.items()},
        "accounted_bytes_per_event": round(sum(parts.values()) / max(1, events), 1),
    }


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]), Path(sys.argv[2]))))
