"""Runs the ingest benchmark: ``python -m benchmarks.run [--events N] [--quick]``.

The workload is generated (or loaded from its cache) first, then every system is measured
one after the other, never two at once: on a 2-core machine they would only measure each
other. Results go to ``benchmarks/results/``; the table is printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import workload
from benchmarks.lmdb_baseline import measure_raw_lmdb
from benchmarks.measurement import Measurement
from benchmarks.report import write_results
from benchmarks.systems import StreamSettings, measure_empty_grpc, measure_python_pipeline, measure_tributary

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_EVENTS = 100_000
# Ack latency is about the client's window by Little's law (latency = batches in flight / rate),
# so the latency target is also measured with a small window beside the throughput run.
LATENCY_WINDOW = 4
SYSTEMS = {
    "a": "raw py-lmdb",
    "b": "empty grpcio server",
    "c": "plain-Python pipeline",
    "real": "Tributary (cdp serve)",
    "real-latency": f"Tributary, window {LATENCY_WINDOW} (latency)",
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description="Tributary's ingest benchmark.")
    parser.add_argument(
        "--events", type=int, default=None, help=f"events to ingest (default {workload.DEFAULT_EVENTS:,})"
    )
    parser.add_argument("--quick", action="store_true", help=f"a short run: {QUICK_EVENTS:,} events unless --events")
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED, help="workload seed")
    parser.add_argument("--window", type=int, default=16, help="max unacknowledged batches per stream")
    parser.add_argument(
        "--only", default=",".join(SYSTEMS), help=f"comma-separated systems to run, from {','.join(SYSTEMS)}"
    )
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where fresh data directories are made")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where ingest.json and README.md go")
    parser.add_argument(
        "--cdp", type=Path, default=Path(sys.executable).with_name("cdp"), help="the cdp executable to benchmark"
    )
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else workload.DEFAULT_EVENTS
    args.only = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = set(args.only) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {list(SYSTEMS)}")
    if args.events <= 0 or args.window <= 0:
        parser.error("--events and --window must be positive")
    return args


def _settle_disk() -> None:
    """Every system starts on a quiet disk: the previous run's dirty pages (hundreds of MB) are
    written back first, so their writeback does not slow the next system's fsyncs."""
    os.sync()
    time.sleep(2.0)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    print(f"workload: {args.events:,} events, seed {args.seed} (generated once, then cached) ...", flush=True)
    work, path = workload.load_or_generate(args.events, args.seed)
    elapsed = time.perf_counter() - started
    print(f"  ready in {elapsed:.1f} s: {path.name}, {work.mean_event_bytes:.0f} B/event", flush=True)

    settings = StreamSettings(
        workload_path=path,
        events=args.events,
        window=args.window,
        # Generous: even 10 k events/s finishes well inside it; a hung server cannot stall make bench.
        timeout_s=60 + args.events / 10_000,
        tmp_root=args.tmp_dir,
        cdp=args.cdp,
    )
    measures: dict[str, Callable[[], Measurement]] = {
        "a": lambda: measure_raw_lmdb(work.events, seed=args.seed, tmp_root=args.tmp_dir),
        "b": lambda: measure_empty_grpc(settings),
        "c": lambda: measure_python_pipeline(settings),
        "real": lambda: measure_tributary(settings),
        "real-latency": lambda: measure_tributary(dataclasses.replace(settings, window=LATENCY_WINDOW)),
    }
    runs: dict[str, Measurement] = {}
    errors: dict[str, str] = {}
    for key in args.only:
        print(f"{SYSTEMS[key]} ...", flush=True)
        _settle_disk()
        try:
            run = measures[key]()
        except Exception as exc:  # one failing system must not hide the others' figures
            errors[key] = f"{type(exc).__name__}: {exc}"
            print(f"  FAILED: {errors[key]}", flush=True)
            traceback.print_exc(file=sys.stderr)
            continue
        runs[key] = run
        latency = f", ack p50 {run.ack.p50_ms:.1f} ms p99 {run.ack.p99_ms:.1f} ms" if run.ack else ""
        print(f"  {run.events_per_s:,.0f} events/s ({run.seconds:.2f} s){latency}", flush=True)

    table = write_results(
        args.results_dir,
        runs=runs,
        names={key: SYSTEMS[key] for key in args.only},
        errors=errors,
        settings={
            "events": args.events,
            "seed": args.seed,
            "batch_size": workload.BATCH_SIZE,
            "window": args.window,
            "mean_event_bytes": round(work.mean_event_bytes, 1),
            "systems": args.only,
        },
    )
    print()
    print(table)
    print(f"\nwritten to {args.results_dir}/ (ingest.json, README.md) in {time.perf_counter() - started:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
