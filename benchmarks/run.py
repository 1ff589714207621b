"""Runs the ingest benchmark: ``python -m benchmarks.run [--events N] [--quick]``.

The workload is generated (or loaded from its cache) first, then every system is measured
one after the other, never two at once: on a 2-core machine they would only measure each
other. Besides the throughput of every path (the baselines, the pre-encoded stream, the users'
``Client.stream(dicts)`` and ``cdp import``), it keeps every batch's ack latency, samples the
server's memory along the pre-encoded run, times start-up to SERVING against the log's size,
and profiles Tributary's processes while they are measured. Results go to
``benchmarks/results/`` (``results/quick/`` with ``--quick``): ``ingest.json`` and the results
page with its charts (``results_page``); the table is printed too.
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
from benchmarks.memory_parts import measure_memory_parts
from benchmarks.profiling import available_profiler
from benchmarks.report import markdown_table, targets, write_ingest_json
from benchmarks.results_page import write_page
from benchmarks.startup import StartupSettings, measure_startup, measure_startup_same_people, step_sizes
from benchmarks.systems import StreamSettings, measure_empty_grpc, measure_python_pipeline, measure_tributary
from benchmarks.user_paths import CDP_IMPORT, CDP_IMPORT_WALL, CLIENT_STREAM, measure_cdp_import, measure_client_stream

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"  # never over the committed full run's figures
QUICK_EVENTS = 100_000
# Ack latency is about the client's window by Little's law (latency = batches in flight / rate),
# so the latency target is also measured with a small window beside the throughput run.
LATENCY_WINDOW = 4
SYSTEMS = {
    "a": "raw py-lmdb",
    "b": "empty grpcio server",
    "c": "plain-Python pipeline",
    "real": "Tributary, pre-encoded stream (cdp serve)",
    "real-latency": f"Tributary, pre-encoded stream, window {LATENCY_WINDOW} (latency)",
    "dicts": CLIENT_STREAM,
    "import": CDP_IMPORT,
    "startup": "start-up to SERVING against log size",
    "memory": "memory by part (in-process engine)",
}
# Systems that are not a row of the throughput table.
NOT_ROWS = {"startup", "memory"}
# Start-up as the log grows and the people do not: 100k people (10k with --quick), 3 rounds
# of ~10 events each.
SAME_PEOPLE = 100_000
SAME_PEOPLE_ROUNDS = 3
# Rows a system adds to the table beside its own.
EXTRA_ROWS = {"import": {"import-wall": CDP_IMPORT_WALL}}
PROFILERS = ("auto", "perf", "py-spy", "off")


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
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"where ingest.json, README.md and the charts go (default {RESULTS_DIR}; --quick: {QUICK_RESULTS_DIR})",
    )
    parser.add_argument(
        "--cdp", type=Path, default=Path(sys.executable).with_name("cdp"), help="the cdp executable to benchmark"
    )
    parser.add_argument(
        "--profile", choices=PROFILERS, default="auto", help="profile Tributary's processes during their runs"
    )
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else workload.DEFAULT_EVENTS
    if args.results_dir is None:
        args.results_dir = QUICK_RESULTS_DIR if args.quick else RESULTS_DIR
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


def _said(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    print(f"workload: {args.events:,} events, seed {args.seed} (generated once, then cached) ...", flush=True)
    work, path = workload.load_or_generate(args.events, args.seed)
    elapsed = time.perf_counter() - started
    print(f"  ready in {elapsed:.1f} s: {path.name}, {work.mean_event_bytes:.0f} B/event", flush=True)

    if {"dicts", "import"} & set(args.only):
        print("  as Segment-Spec JSON lines (written once, then cached) ...", flush=True)
        json_lines = workload.json_lines(path)
        print(f"  ready: {json_lines.name}, {json_lines.stat().st_size / 2**20:,.0f} MiB", flush=True)
    profiler = None if args.profile == "off" else args.profile
    if profiler == "auto":
        print(f"profiler: {available_profiler() or 'none (apt-get install linux-perf, or pip install py-spy)'}")

    settings = StreamSettings(
        workload_path=path,
        events=args.events,
        window=args.window,
        # Generous: even 10 k events/s finishes well inside it; a hung server cannot stall make bench.
        timeout_s=60 + args.events / 10_000,
        tmp_root=args.tmp_dir,
        cdp=args.cdp,
        profiler=profiler,
    )
    startup_settings = StartupSettings(
        sizes=step_sizes(args.events), cdp=args.cdp, tmp_root=args.tmp_dir, profiler=profiler
    )
    measures: dict[str, Callable[[], list[Measurement]]] = {
        "a": lambda: [measure_raw_lmdb(work.events, seed=args.seed, tmp_root=args.tmp_dir)],
        "b": lambda: [measure_empty_grpc(settings)],
        "c": lambda: [measure_python_pipeline(settings)],
        "real": lambda: [measure_tributary(settings, name=SYSTEMS["real"])],
        "real-latency": lambda: [
            measure_tributary(
                dataclasses.replace(settings, window=LATENCY_WINDOW), key="real-latency", name=SYSTEMS["real-latency"]
            )
        ],
        "dicts": lambda: [measure_client_stream(settings, json_lines)],
        "import": lambda: list(measure_cdp_import(settings, json_lines, startup_runs=1 if args.quick else 3)),
    }
    runs: dict[str, Measurement] = {}
    errors: dict[str, str] = {}
    startup = None
    memory = None
    for key in args.only:
        print(f"{SYSTEMS[key]} ...", flush=True)
        _settle_disk()
        try:
            if key == "startup":
                startup = measure_startup(work.batches, startup_settings, settle=_settle_disk)
                people = SAME_PEOPLE // 10 if args.quick else SAME_PEOPLE
                startup["same_people"] = measure_startup_same_people(
                    people, SAME_PEOPLE_ROUNDS, startup_settings, settle=_settle_disk
                )
                continue
            if key == "memory":
                memory = measure_memory_parts(path, args.tmp_dir)
                print(
                    f"  {memory['rss_bytes_per_event']:,.0f} B/event resident, "
                    f"{memory['accounted_bytes_per_event']:,.0f} B/event in the engine's structures",
                    flush=True,
                )
                continue
            measured = measures[key]()
        except Exception as exc:  # one failing system must not hide the others' figures
            errors[key] = f"{type(exc).__name__}: {exc}"
            print(f"  FAILED: {errors[key]}", flush=True)
            traceback.print_exc(file=sys.stderr)
            continue
        for run in measured:
            runs[run.key] = run
            latency = f", ack p50 {run.ack.p50_ms:.1f} ms p99 {run.ack.p99_ms:.1f} ms" if run.ack else ""
            print(f"  {run.name}: {run.events_per_s:,.0f} events/s ({run.seconds:.2f} s){latency}", flush=True)

    names: dict[str, str] = {}
    for key in args.only:
        if key not in NOT_ROWS:
            names[key] = SYSTEMS[key]
            names.update(EXTRA_ROWS.get(key, {}))
    document = write_ingest_json(
        args.results_dir,
        runs=runs,
        names=names,
        errors=errors,
        settings={
            "events": args.events,
            "seed": args.seed,
            "batch_size": workload.BATCH_SIZE,
            "window": args.window,
            "mean_event_bytes": round(work.mean_event_bytes, 1),
            "systems": args.only,
            "quick": args.quick,
            "profiler": available_profiler() if profiler == "auto" else profiler,
        },
        startup=startup,
        memory=memory,
    )
    page = write_page(args.results_dir)
    print()
    print(markdown_table(document))
    print()
    for target in targets(document):
        print(f"- {target.label}: {target.measured} → {_said(target.met)}")
    page_name = page.name if page else "no page"
    elapsed = time.perf_counter() - started
    print(f"\nwritten to {args.results_dir}/ (ingest.json, {page_name}, charts) in {elapsed:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
