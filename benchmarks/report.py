"""Targets, ratios and the written report (``results/ingest.json`` and ``results/README.md``)."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.measurement import Measurement

BASELINES = ("a", "b", "c")
REAL = "real"
P99_TARGET_MS = 50.0
LATENCY_RUN = "real-latency"


@dataclass(frozen=True)
class Target:
    """One goal of the ingest issue, checked against the real run."""

    goal: str  # e.g. "≥ 3x (a)"
    value: float | None  # the ratio or milliseconds; None when a run it needs did not complete
    met: bool | None
    stretch: bool = False

    @property
    def label(self) -> str:
        return self.goal + (" (stretch)" if self.stretch else "")

    @property
    def measured(self) -> str:
        if self.value is None:
            return "—"
        return f"{self.value:.1f} ms" if self.goal.startswith("p99") else f"{self.value:.2f}x"


def ratios(runs: dict[str, Measurement]) -> dict[str, float]:
    """``"<x>/<baseline>"`` for every completed run x and baseline other than itself."""
    out = {}
    for key, run in runs.items():
        for base in BASELINES:
            if base != key and base in runs and runs[base].events_per_s > 0:
                out[f"{key}/{base}"] = run.events_per_s / runs[base].events_per_s
    return out


def targets(runs: dict[str, Measurement]) -> list[Target]:
    """The issue's targets: ≥ 3x (a) (stretch 5x), ≥ 3x (c), ack p99 ≤ 50 ms."""
    ratio = ratios(runs)

    def at_least(base: str, factor: float, stretch: bool = False) -> Target:
        value = ratio.get(f"{REAL}/{base}")
        return Target(f"≥ {factor:g}x ({base})", value, None if value is None else value >= factor, stretch)

    # The latency target is read from the small-window run when there is one (see run.py).
    latency_run = runs.get(LATENCY_RUN) or runs.get(REAL)
    p99 = latency_run.ack.p99_ms if latency_run and latency_run.ack else None
    window = f" (window {latency_run.details['window']})" if latency_run and "window" in latency_run.details else ""
    return [
        at_least("a", 3),
        at_least("a", 5, stretch=True),
        at_least("c", 3),
        Target(f"p99 ≤ {P99_TARGET_MS:g} ms{window}", p99, None if p99 is None else p99 <= P99_TARGET_MS),
    ]


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]


def markdown_table(runs: dict[str, Measurement], names: dict[str, str], errors: dict[str, str]) -> str:
    """One row per system, in the order of ``names``; failed or skipped runs say why."""
    checks = targets(runs)
    ratio = ratios(runs)
    lines = [
        "| system | events/s | x (a) | x (b) | x (c) | ack p50 | ack p99 | target | met? |",
        "|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for key, name in names.items():
        label = f"({key}) {name}" if key in BASELINES else name
        run = runs.get(key)
        if run is None:
            reason = errors.get(key, "skipped").splitlines()[0][:120]
            lines.append(f"| {label} | not run: {reason} | | | | | | | |")
            continue
        cells = [f"{run.events_per_s:,.0f}"]
        for base in BASELINES:
            pair = f"{key}/{base}"
            cells.append("1.00" if base == key else f"{ratio[pair]:.2f}" if pair in ratio else "")
        cells += [f"{run.ack.p50_ms:.1f} ms", f"{run.ack.p99_ms:.1f} ms"] if run.ack else ["—", "—"]
        if key == REAL:
            cells += ["; ".join(t.label for t in checks), "; ".join(_verdict(t.met) for t in checks)]
        else:
            cells += ["—", "—"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "lmdb": version("lmdb"),
    }


def write_results(
    results_dir: Path,
    *,
    runs: dict[str, Measurement],
    names: dict[str, str],
    errors: dict[str, str],
    settings: dict[str, Any],
) -> str:
    """Writes ingest.json and README.md; returns the markdown table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    checks = targets(runs)
    table = markdown_table(runs, names, errors)
    when = datetime.now(UTC).replace(microsecond=0).isoformat()
    env = environment()
    document = {
        "benchmark": "ingest",
        "measured_at": when,
        "environment": env,
        "settings": settings,
        "runs": {key: run.to_json() for key, run in runs.items()},
        "ratios": {key: round(value, 3) for key, value in ratios(runs).items()},
        "targets": [asdict(t) for t in checks],
        "errors": errors,
    }
    (results_dir / "ingest.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    target_lines = [f"- {t.label}: measured {t.measured} → {_verdict(t.met)}" for t in checks]
    readme = f"""# Ingest benchmark

Generated by `python -m benchmarks.run` (`make bench`) on {when}; raw figures in `ingest.json`.

{settings["events"]:,} Segment-like events (~{settings["mean_event_bytes"]:.0f} B encoded; ~80 % track, identify,
page; up to 100 k distinct users; seed {settings["seed"]}), {settings["batch_size"]} per `StreamRequest`,
streamed by one client process with at most {settings["window"]} batches unacknowledged.
Machine: {env["cpus"]} CPUs, {env["platform"]}, Python {env["python"]}, grpcio {env["grpcio"]},
py-lmdb {env["lmdb"]}. Client and server share the machine.

{table}

Ratios are events/s of the row divided by the baseline's. Ack latency is per batch, from
handing it to gRPC to receiving its acknowledgement.

## Targets (real run)

{chr(10).join(target_lines)}

## What is measured

- **(a) raw py-lmdb**: the event bytes put under random 16-byte keys, 10 k puts per
  transaction, fsync on every commit, in-process: no gRPC, no decoding, no dedupe.
- **(b) empty grpcio server**: a separate process that acknowledges every batch by its
  sequence number without decoding it: what the transport and client allow.
- **(c) plain-Python pipeline**: a separate grpcio server with py-lmdb that decodes each
  batch, checks a messageId dedupe index, appends the event and its dedupe marker, and
  commits with fsync per group of waiting batches before acknowledging them.
- **Tributary**: `cdp serve` in a separate process, fed by the same client as (b) and (c);
  every acknowledged event is durable (fsync'd) and deduplicated.
"""
    (results_dir / "README.md").write_text(readme)
    return table
