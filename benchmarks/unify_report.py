"""The Unify benchmark's figures, targets and written report (``results/unify.json``, ``results/unify.md``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import environment, measured_at


@dataclass(frozen=True)
class Figure:
    """One measured figure, with its baseline and target where it has them.

    Attributes:
        part: The part of the benchmark ("a".."e").
        name: What is measured.
        measured: The value, in ``unit``; None when the run failed.
        unit: "s", "/s", "ms", "µs" or "" (a count).
        baseline_name: What it is compared with.
        baseline: The baseline's value, in ``unit``.
        ratio: How many times better than the baseline (baseline time / time, or rate / rate).
        target: The goal, as text.
        met: Whether the goal is met; None when there is no goal or no value.
    """

    part: str
    name: str
    measured: float | None
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "s":
        return f"{value:.2f} s"
    if unit in ("ms", "µs"):
        return f"{value:.2f} {unit}"
    return f"{value:,.0f}"


def _verdict(figure: Figure) -> str:
    if not figure.target:
        return "—"
    return {True: "yes", False: "**no**", None: "not measured"}[figure.met]


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| figure | measured | baseline | ratio | target | met? |", "|---|--:|--:|--:|---|---|"]
    for f in figures:
        baseline = f"{_value(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline_name else "—"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "—"
        lines.append(
            f"| ({f.part}) {f.name} | {_value(f.measured, f.unit)} | {baseline} | {ratio} | {f.target or '—'} "
            f"| {_verdict(f)} |"
        )
    return "\n".join(lines)


def write_figures_json(
    path: Path,
    benchmark: str,
    *,
    when: str,
    env: dict[str, Any],
    figures: list[Figure],
    details: dict[str, Any],
    errors: dict[str, str],
    settings: dict[str, Any],
) -> None:
    """A benchmark's JSON document: its figures with what was measured where, and when."""
    document = {
        "benchmark": benchmark,
        "measured_at": when,
        "environment": env,
        "settings": settings,
        "figures": [asdict(f) for f in figures],
        "details": details,
        "errors": errors,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def failure_lines(errors: dict[str, str]) -> str:
    """The parts that failed, a markdown line each."""
    return "".join(f"- ({part}) failed: {reason.splitlines()[0][:300]}\n" for part, reason in errors.items())


_EXPLANATION = """## What is measured

- **(a) bulk resolution**: the identity graph (see `benchmarks/unify_workload.py`) sent as
  `StreamRequest`s of 500 events to the engine in-process (`Engine.submit_stream`, 16 batches
  unacknowledged, fsync on), timed to the last acknowledgement: every event durable and its
  identity resolved. Baselines on the same edge list ("type:value" strings, one edge from each
  event's anchor to each other identifier): networkx (build the graph, `connected_components`)
  and in-process DuckDB (load the CSV edge list, number the identifiers, min-label
  propagation to a fixpoint); Python's garbage collector is off in their timed sections. The
  engine's profiles are checked against networkx's components on a random sample (half of it
  from merged components), and DuckDB's component count against networkx's.
- **(b) GetProfile over gRPC**: `cdp serve` on a data directory preloaded in-process with a
  100,000-people graph, one client process keeping 32 unary calls in flight (grpc futures,
  pre-encoded requests, raw bytes) after a 1 s warm-up; the baseline is a grpcio server in its
  own process answering a fixed ~250 B `GetProfileResponse`, driven by the same client. Both
  serve at once and are measured in alternating rounds (5; 3 with --quick), the median round of each kept (every
  round is in `unify.json`). By Little's law, latency with 32 in flight is 32 / (calls per
  second), so the p99 target also needs the rate; the one-call-at-a-time run shows a lone
  call's latency.
- **(c) in-process lookup**: `Engine.get_profile` on random identifiers of (a)'s engine, each
  call timed alone from Python (includes the Python call, the GIL release and the returned bytes).
- **(d) BatchGetProfiles**: 1000 random identifiers per call, in-process on (a)'s engine and over
  gRPC on (b)'s server (2 calls in flight).
- **(e) ingest with identity resolution**: the ingest benchmark's workload (`benchmarks/run.py`;
  1M events, 100 k with `--quick`): `cdp serve` fed by its streaming client against raw py-lmdb
  (random 16 B keys, 10 k puts per fsync'd transaction).
"""


def write_results(
    results_dir: Path,
    *,
    figures: list[Figure],
    details: dict[str, Any],
    errors: dict[str, str],
    settings: dict[str, Any],
) -> str:
    """Writes unify.json and unify.md; returns the markdown table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    when = measured_at()
    env = environment("duckdb", "networkx")
    write_figures_json(
        results_dir / "unify.json",
        "unify",
        when=when,
        env=env,
        figures=figures,
        details=details,
        errors=errors,
        settings=settings,
    )
    table = markdown_table(figures)
    failures = failure_lines(errors)
    text = f"""# Unify benchmark

Generated by `python -m benchmarks.unify` on {when}; raw figures and details in `unify.json`.
Parts run: {", ".join(settings["parts"])}; {settings["profiles"]:,} people for (a), (c), (d); seed {settings["seed"]}.
Machine: {env["cpus"]} CPUs, {env["platform"]}, Python {env["python"]}, grpcio {env["grpcio"]},
networkx {env["networkx"]}, DuckDB {env["duckdb"]}. Clients and servers share the machine.

{table}

{failures}
{_EXPLANATION}"""
    (results_dir / "unify.md").write_text(text)
    return table
