"""The ingest benchmark's document (``results/ingest.json``): ratios, targets and the table.

Everything after the measurement works on the JSON document, not on live objects, so that the
results page (``results_page``) can be written again from the files alone.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.measurement import Measurement

BASELINES = ("a", "b", "c")
RAW_LMDB = "a"
# The runs of the targets: the pre-encoded stream (window 16), its window-4 latency run,
# and the users' paths.
REAL = "real"
LATENCY_RUN = "real-latency"
CLIENT_STREAM = "dicts"
CDP_IMPORT = "import"
P99_TARGET_MS = 50.0
BYTES_PER_EVENT_TARGET = 100.0
STARTUP_TARGET_S = 5.0
STARTUP_TARGET_EVENTS = 10_000_000


@dataclass(frozen=True)
class Target:
    """One goal of the issue, checked against a run.

    Attributes:
        goal: What is asked, e.g. "pre-encoded stream (window 16) ≥ 3x raw py-lmdb".
        value: The ratio, milliseconds, bytes or seconds; None when its run did not complete.
        unit: "x", "ms", "B/event" or "s".
        met: Whether it is met; None when not measured.
        chart: The chart of the results page it belongs to.
        run: The run (or part) whose profile explains a miss.
        threshold: The bound ``value`` is held to (a ratio, ms, bytes or seconds).
        baseline: What the ratio is against, with the baseline's own figure.
        stretch: A stretch goal.
    """

    goal: str
    value: float | None
    unit: str
    met: bool | None
    chart: str
    run: str
    threshold: float
    baseline: str = ""
    stretch: bool = False

    @property
    def label(self) -> str:
        return self.goal + (" (stretch)" if self.stretch else "")

    @property
    def measured(self) -> str:
        if self.value is None:
            return "—"
        if self.unit == "x":
            return f"{self.value:.2f}x" + (f" {self.baseline}" if self.baseline else "")
        if self.unit == "B/event":
            return f"{self.value:,.0f} B/event"
        return f"{self.value:.1f} {self.unit}"


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]


def events_per_s(run: dict[str, Any]) -> float:
    return float(run.get("events_per_s") or 0.0)


def ratios(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``"<x>/<baseline>"`` for every completed run x and baseline other than itself."""
    out = {}
    for key, run in runs.items():
        for base in BASELINES:
            if base != key and base in runs and events_per_s(runs[base]) > 0:
                out[f"{key}/{base}"] = events_per_s(run) / events_per_s(runs[base])
    return out


def memory_growth(run: dict[str, Any] | None) -> dict[str, float] | None:
    """The server's RssAnon growth over a run, from its (events acked, bytes) samples: per event
    over the whole run, and the marginal rate over its second half (past the warm-up)."""
    samples = (run or {}).get("details", {}).get("rss") or []
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return None
    (e0, r0), (e1, r1) = samples[0], samples[-1]
    half = next((s for s in samples if s[0] >= e1 / 2), samples[0])
    marginal = (r1 - half[1]) / (e1 - half[0]) if e1 > half[0] else 0.0
    return {
        "events": e1 - e0,
        "start_bytes": r0,
        "end_bytes": r1,
        "bytes_per_event": (r1 - r0) / (e1 - e0),
        "marginal_bytes_per_event": marginal,
    }


def targets(document: dict[str, Any]) -> list[Target]:
    """The issue's targets that the ingest benchmark measures."""
    runs: dict[str, dict[str, Any]] = document.get("runs", {})
    ratio = ratios(runs)
    raw = runs.get(RAW_LMDB)
    baseline = f"raw py-lmdb ({events_per_s(raw):,.0f} events/s)" if raw else "raw py-lmdb"

    def at_least(key: str, what: str, factor: float, stretch: bool = False) -> Target:
        value = ratio.get(f"{key}/{RAW_LMDB}")
        met = None if value is None else value >= factor
        goal = f"{what} ≥ {factor:g}x raw py-lmdb"
        return Target(goal, value, "x", met, "throughput", key, factor, baseline, stretch)

    window = runs.get(REAL, {}).get("details", {}).get("window", 16)
    latency_run = runs.get(LATENCY_RUN)
    p99 = (latency_run or {}).get("ack", {}).get("p99_ms") if latency_run else None
    latency_window = (latency_run or {}).get("details", {}).get("window", 4)
    growth = memory_growth(runs.get(REAL))
    per_event = growth["bytes_per_event"] if growth else None
    found = [
        at_least(REAL, f"pre-encoded stream, identity on (window {window})", 3),
        at_least(REAL, f"pre-encoded stream, identity on (window {window})", 5, stretch=True),
        at_least(CLIENT_STREAM, "`Client.stream(dicts)`", 2),
        at_least(CDP_IMPORT, "`cdp import FILE.jsonl` (start-up excluded)", 2),
        Target(
            f"ack p99 ≤ {P99_TARGET_MS:g} ms (window {latency_window})",
            p99,
            "ms",
            None if p99 is None else p99 <= P99_TARGET_MS,
            "latency",
            LATENCY_RUN,
            P99_TARGET_MS,
        ),
        Target(
            f"server RssAnon growth ≤ {BYTES_PER_EVENT_TARGET:g} B per stored event",
            per_event,
            "B/event",
            None if per_event is None else per_event <= BYTES_PER_EVENT_TARGET,
            "memory",
            REAL,
            BYTES_PER_EVENT_TARGET,
        ),
    ]
    startup = document.get("startup") or {}
    value = startup.get("extrapolated_s")
    limit, events = startup.get("target_s", STARTUP_TARGET_S), startup.get("target_events", STARTUP_TARGET_EVENTS)
    measured_up_to = f" (extrapolated from {startup['sizes'][-1]:,})" if startup.get("sizes") else ""
    goal = f"start-up ≤ {limit:g} s to SERVING at {events / 1e6:g}M events{measured_up_to}"
    found.append(Target(goal, value, "s", None if value is None else value <= limit, "startup", "startup", limit))
    return found


def markdown_table(document: dict[str, Any]) -> str:
    """One row per system, in the order run; failed or skipped runs say why."""
    runs: dict[str, dict[str, Any]] = document.get("runs", {})
    names: dict[str, str] = document.get("names") or {key: run.get("name", key) for key, run in runs.items()}
    errors: dict[str, str] = document.get("errors", {})
    ratio = ratios(runs)
    lines = [
        "| system | events/s | x (a) | x (b) | x (c) | ack p50 | ack p99 |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key, name in names.items():
        label = f"({key}) {name}" if key in BASELINES else name
        run = runs.get(key)
        if run is None:
            reason = errors.get(key, "skipped").splitlines()[0][:120]
            lines.append(f"| {label} | not run: {reason} | | | | | |")
            continue
        cells = [f"{events_per_s(run):,.0f}"]
        for base in BASELINES:
            pair = f"{key}/{base}"
            cells.append("1.00" if base == key else f"{ratio[pair]:.2f}" if pair in ratio else "")
        ack = run.get("ack")
        cells += [f"{ack['p50_ms']:.1f} ms", f"{ack['p99_ms']:.1f} ms"] if ack else ["—", "—"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment(*extra: str) -> dict[str, Any]:
    """The machine and the versions of the packages measured with (``extra``: more of them)."""

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        **{package: version(package) for package in ("grpcio", "protobuf", "lmdb", *extra)},
    }


def measured_at() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def write_document(
    results_dir: Path,
    benchmark: str,
    *,
    runs: dict[str, dict[str, Any]],
    errors: dict[str, str],
    settings: dict[str, Any],
    targets: Callable[[dict[str, Any]], list[dict[str, Any]]],
    packages: Sequence[str] = (),
) -> dict[str, Any]:
    """Writes ``<benchmark>.json``: a benchmark's runs, its failures and settings, when and on what it
    was measured (``packages``: the versions worth keeping besides grpcio's and protobuf's), and
    ``targets(document)``; returns the document."""
    results_dir.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "benchmark": benchmark,
        "measured_at": measured_at(),
        "environment": environment(*packages),
        "settings": settings,
        "runs": runs,
        "errors": errors,
    }
    document["targets"] = targets(document)
    (results_dir / f"{benchmark}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document


def write_ingest_json(
    results_dir: Path,
    *,
    runs: dict[str, Measurement],
    names: dict[str, str],
    errors: dict[str, str],
    settings: dict[str, Any],
    startup: dict[str, Any] | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes ingest.json; returns the document."""
    results_dir.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "benchmark": "ingest",
        "measured_at": measured_at(),
        "environment": environment(),
        "settings": settings,
        "names": names,
        "runs": {key: run.to_json() for key, run in runs.items()},
        "errors": errors,
    }
    if startup is not None:
        document["startup"] = startup
    if memory is not None:
        document["memory_parts"] = memory
    document["ratios"] = {key: round(value, 3) for key, value in ratios(document["runs"]).items()}
    document["targets"] = [asdict(t) | {"measured": t.measured} for t in targets(document)]
    (results_dir / "ingest.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document
