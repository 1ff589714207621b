"""The results page: ``results/README.md`` with its charts, written from ``ingest.json``,
``unify.json``, ``http.json``, ``audiences.json``, ``connections.json``, ``governance.json``,
``deletion.json`` and ``predictions.json`` alone
(``python -m benchmarks.results_page [RESULTS_DIR]`` writes it again).

Charts first, one per question (how fast is each path, how long does an ack take, how long
does a restart take, how much memory does an event cost, how fast is identity resolution, how
fast is the HTTP port, how fast are audiences, how fast do destinations deliver, how fast are
predictions),
each with its targets; under each figure that misses a target, "where the time goes": the
profile taken during that run. Tables and method come last. Any JSON may be missing or
older than the others: each section says which run it comes from.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import (
    audience_report,
    charts,
    connections_report,
    deletion_report,
    governance_report,
    http_report,
    prediction_report,
)
from benchmarks.report import (
    BYTES_PER_EVENT_TARGET,
    CDP_IMPORT,
    CLIENT_STREAM,
    LATENCY_RUN,
    P99_TARGET_MS,
    RAW_LMDB,
    REAL,
    Target,
    events_per_s,
    markdown_table,
    memory_growth,
    ratios,
    targets,
    verdict,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PAGE = "README.md"
# The throughput chart's rows, top to bottom: run key, label, is a baseline.
THROUGHPUT_ROWS = (
    ("a", "raw LMDB (py-lmdb, random keys)", True),
    ("b", "empty gRPC server", True),
    ("c", "plain Python (grpcio + py-lmdb)", True),
    (REAL, "Tributary, pre-encoded stream", False),
    (CLIENT_STREAM, "Client.stream(dicts)", False),
    (CDP_IMPORT, "cdp import FILE.jsonl (start-up excluded)", False),
    ("import-wall", "cdp import FILE.jsonl (with start-up)", False),
)
# The Unify targets of bulk (re-)resolution.
RESOLUTION_TARGETS = {"networkx": 15.0, "DuckDB": 10.0}
PROFILE_ROWS = 8


def _load(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def _is_quick(document: dict[str, Any] | None) -> bool:
    return bool(document and document.get("settings", {}).get("quick"))


def _origin(document: dict[str, Any], what: str) -> str:
    quick = " (QUICK)" if _is_quick(document) else ""
    return f"{what} of {document.get('measured_at', '?')}{quick}"


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def _how_to_profile(command: str) -> str:
    return f"`perf record -e cpu-clock -F 499 -p <pid>` during `{command}`, then `perf report --sort comm,dso,sym`"


def hot_path_section(title: str, profile: dict[str, Any] | None, *, fallback: str = "") -> str:
    """'Where the time goes' from a collected profile (``Profile.to_json``)."""
    lines = [f"#### Where the time goes: {title}", ""]
    hot = (profile or {}).get("hot_path")
    if not hot:
        reason = (profile or {}).get("error") or "no profile was taken in this run"
        lines.append(f"No profile: {reason}.")
        if fallback:
            lines.append(f"To take one: {fallback}")
        return "\n".join(lines) + "\n"
    cores = ", ".join(f"{role} {value:.2f}" for role, value in hot["cores"].items())
    lines.append(
        f"{hot['tool']} (CPU samples of self time, no call graph) during the run, collected "
        f"{hot['collected_at']}: {hot['samples']:,} samples over {hot['seconds']:.1f} s. "
        f"CPU cores kept busy on average: {cores}."
    )
    threads = ", ".join(f"{role} `{thread}` {_percent(share)}" for role, thread, share in hot["threads"][:5])
    modules = ", ".join(f"{role} {module} {_percent(share)}" for role, module, share in hot["modules"][:5])
    lines += ["", f"- busiest threads: {threads}", f"- busiest code: {modules}", ""]
    lines += ["| share | process | thread | function | module |", "|--:|---|---|---|---|"]
    for frame in hot["frames"][:PROFILE_ROWS]:
        function = frame["function"].replace("|", "\\|")
        lines.append(
            f"| {_percent(frame['share'])} | {frame['role']} | `{frame['thread']}` | `{function}` | {frame['module']} |"
        )
    during = f"while `{hot['context']}` runs: " if hot.get("context") else ""
    lines += ["", f"Reproduce: {during}`{hot['command']}`"]
    return "\n".join(lines) + "\n"


def _targets_table(found: Sequence[tuple[str, Target | dict[str, Any]]]) -> str:
    lines = ["| chart | target | measured | met? |", "|---|---|---|---|"]
    for chart, target in found:
        if isinstance(target, Target):
            lines.append(f"| {chart} | {target.label} | {target.measured} | {verdict(target.met)} |")
        else:
            lines.append(f"| {chart} | {target['target']} | {target['measured']} | {verdict(target['met'])} |")
    return "\n".join(lines)


_CHART_TITLES = {
    "throughput": "[throughput](#throughput-by-path)",
    "latency": "[ack latency](#ack-latency-by-window)",
    "startup": "[start-up](#start-up-time-against-log-size)",
    "memory": "[memory](#resident-memory-against-events-stored)",
    "resolution": "[resolution](#identity-resolution-against-networkx-and-duckdb)",
    "http": f"[HTTP port]({http_report.ANCHOR})",
    "audiences": f"[Engage]({audience_report.ANCHOR})",
    "connections": f"[Connections]({connections_report.ANCHOR})",
    "governance": f"[Governance]({governance_report.ANCHOR})",
    "deletion": f"[Deletion]({deletion_report.ANCHOR})",
    "predictions": f"[Predictions]({prediction_report.ANCHOR})",
}


def _throughput(ingest: dict[str, Any], results_dir: Path, found: list[Target]) -> str:
    runs = ingest.get("runs", {})
    ratio = ratios(runs)
    goal = {t.run: t for t in found if t.chart == "throughput" and not t.stretch}
    bars = []
    for key, label, baseline in THROUGHPUT_ROWS:
        if key not in runs:
            continue
        target = goal.get(key)
        bars.append(
            charts.Bar(
                label=label,
                events_per_s=events_per_s(runs[key]),
                ratio=None if key == RAW_LMDB else ratio.get(f"{key}/{RAW_LMDB}"),
                target=target.threshold if target else None,
                met=target.met if target else None,
                baseline=baseline,
            )
        )
    text = ["## Throughput by path", ""]
    if not bars:
        return "\n".join([*text, "Not measured in this run.", ""])
    settings = ingest.get("settings", {})
    charts.throughput_chart(
        bars,
        results_dir / "throughput.png",
        subtitle=f"{settings.get('events', 0):,} events; {_origin(ingest, 'ingest run')}",
        quick=_is_quick(ingest),
    )
    raw = runs.get(RAW_LMDB)
    text += [
        "![Throughput by path](throughput.png)",
        "",
        f"The same {settings.get('events', 0):,} events through each path, every ratio against raw py-lmdb "
        + (f"({events_per_s(raw):,.0f} events/s) " if raw else "")
        + "measured in the same run. Green: target met; red: missed; ▼ marks the target.",
        "",
    ]
    explained = {
        REAL: ("the pre-encoded stream (server)", "python -m benchmarks.run --only real"),
        CLIENT_STREAM: ("`Client.stream(dicts)` (server and client)", "python -m benchmarks.run --only dicts"),
        CDP_IMPORT: ("`cdp import` (server and the import process)", "python -m benchmarks.run --only import"),
    }
    for key, (what, command) in explained.items():
        target = goal.get(key)
        if target and target.met is False:
            profile = runs.get(key, {}).get("details", {}).get("profile")
            title = f"{what}, {target.value or 0:.2f}x against ≥ {target.threshold:g}x"
            text.append(hot_path_section(title, profile, fallback=_how_to_profile(command)))
    return "\n".join(text)


def _latency(ingest: dict[str, Any], results_dir: Path, found: list[Target]) -> str:
    runs = ingest.get("runs", {})
    series = {}
    for key in (REAL, LATENCY_RUN):
        run = runs.get(key)
        samples = (run or {}).get("details", {}).get("ack_samples_ms")
        if samples:
            series[f"window {run['details'].get('window', '?')} ({len(samples):,} batches)"] = samples
    text = ["## Ack latency by window", ""]
    target = next((t for t in found if t.chart == "latency"), None)
    if not series:
        p99 = f"; p99 at window 4: {target.measured}" if target and target.value is not None else ""
        return "\n".join([*text, f"No per-batch samples in this run{p99}.", ""])
    charts.latency_chart(
        series,
        results_dir / "ack_latency.png",
        target_ms=P99_TARGET_MS,
        target_label=f"target: p99 ≤ {P99_TARGET_MS:g} ms at window 4",
        subtitle=_origin(ingest, "ingest run"),
        quick=_is_quick(ingest),
    )
    text += [
        "![Ack latency by window](ack_latency.png)",
        "",
        "Time from handing each batch (500 events) to gRPC to receiving its acknowledgement, i.e. until "
        "its events are durable and resolved, with 16 and with 4 batches in flight. By Little's law the "
        "latency is about the window divided by the rate, so the latency target is read at window 4.",
        "",
    ]
    if target and target.met is False:
        profile = runs.get(LATENCY_RUN, {}).get("details", {}).get("profile")
        fallback = _how_to_profile("python -m benchmarks.run --only real-latency")
        text.append(hot_path_section(f"window 4, p99 {target.measured}", profile, fallback=fallback))
    return "\n".join(text)


def _startup(ingest: dict[str, Any], results_dir: Path, found: list[Target]) -> str:
    text = ["## Start-up time against log size", ""]
    startup = ingest.get("startup")
    if not startup or not startup.get("sizes"):
        return "\n".join([*text, "Not measured in this run.", ""])
    charts.startup_chart(
        startup["sizes"],
        startup["seconds"],
        results_dir / "startup.png",
        target_s=startup.get("target_s"),
        target_events=startup.get("target_events"),
        extrapolated_s=startup.get("extrapolated_s"),
        subtitle=_origin(ingest, "ingest run"),
        quick=_is_quick(ingest),
    )
    sizes = ", ".join(f"{n:,}" for n in startup["sizes"])
    disk = ", ".join(f"{b / 2**20:,.0f} MiB" for b in startup.get("disk_bytes", []))
    text += [
        "![Start-up time to SERVING](startup.png)",
        "",
        f"`cdp serve` from process start to the first health check answering SERVING, on data directories "
        f"holding {sizes} events ({disk} on disk): after a clean close, after SIGTERM and after kill -9. "
        "The target is about 10M events; the dotted line extrapolates the restarts' least-squares line to it.",
        "",
    ]
    same = startup.get("same_people")
    if same and same.get("sizes"):
        text += [
            f"The same {same['people']:,} people sending more and more events (rounds of ~10 each; a "
            f"{same['dedupe_window_s']:g} s dedupe window, so that only the log grows): restart after SIGTERM.",
            "",
            "| events stored | start-up to SERVING |",
            "|--:|--:|",
            *(f"| {n:,} | {s:.2f} s |" for n, s in zip(same["sizes"], same["seconds"], strict=True)),
            "",
        ]
    target = next((t for t in found if t.chart == "startup"), None)
    if target and target.met is False:
        title = f"restart after SIGTERM with {startup['sizes'][-1]:,} events"
        fallback = _how_to_profile("python -m benchmarks.run --only startup")
        text.append(hot_path_section(title, startup.get("profile"), fallback=fallback))
    return "\n".join(text)


def _memory(ingest: dict[str, Any], results_dir: Path, found: list[Target]) -> str:
    text = ["## Resident memory against events stored", ""]
    run = ingest.get("runs", {}).get(REAL)
    rss = (run or {}).get("details", {}).get("rss")
    growth = memory_growth(run)
    if not rss or growth is None:
        return "\n".join([*text, "Not measured in this run.", ""])
    charts.memory_chart(
        rss,
        results_dir / "memory.png",
        target_bytes_per_event=BYTES_PER_EVENT_TARGET,
        subtitle=_origin(ingest, "ingest run"),
        quick=_is_quick(ingest),
    )
    text += [
        "![Resident memory against events stored](memory.png)",
        "",
        f"The server's anonymous resident memory (`RssAnon` in `/proc/PID/status`: heap, not the LMDB map) "
        f"sampled along the pre-encoded run, whose workload has ~10 events per person (anonymous browsing, "
        f"identify with email). From {growth['start_bytes'] / 2**20:,.0f} MiB to {growth['end_bytes'] / 2**20:,.0f} "
        f"MiB over {growth['events']:,.0f} events: **{growth['bytes_per_event']:,.0f} B per event** "
        f"({growth['marginal_bytes_per_event']:,.0f} B per event over the second half).",
        "",
    ]
    parts = ingest.get("memory_parts")
    if parts:
        text += _memory_parts(parts, growth)
    return "\n".join(text)


def _memory_parts(parts: dict[str, Any], server: dict[str, Any]) -> list[str]:
    """The engine's own account of its structures after the same workload in-process."""
    per_event: dict[str, float] = parts["parts_bytes_per_event"]
    groups = {
        "identity graph": sum(v for k, v in per_event.items() if k.startswith("graph.")),
        "dedupe window": per_event.get("dedupe", 0.0),
        "identifier index buffers": sum(v for k, v in per_event.items() if k.startswith("index.")),
        "account links": per_event.get("account_links", 0.0),
        "Engage's event index": per_event.get("engage_events", 0.0),
    }
    text = [
        "#### Where the memory goes",
        "",
        f"The same {parts['events']:,} events through the engine in a process of its own "
        f"(`python -m benchmarks.memory_parts`), then `Engine.memory_usage()`, the engine's account of its "
        f"structures (tables at their capacity, plus what their entries own). That process grew by "
        f"**{parts['rss_bytes_per_event']:,.0f} B per event** (the server above: "
        f"{server['bytes_per_event']:,.0f}); the structures account for "
        f"{parts['accounted_bytes_per_event']:,.0f} B per event. The rest is the allocator's (freed memory "
        "kept for reuse, partly filled pages) and buffers in flight. Traits are folded when a profile is "
        "read, from the log seqs of its identify events (`graph.profiles`): no fold is kept in memory.",
        "",
        "| part | B per event |",
        "|---|--:|",
    ]
    text += [f"| {name} | {value:,.1f} |" for name, value in groups.items()]
    text += ["", "| structure | B per event |", "|---|--:|"]
    largest_first = sorted(per_event.items(), key=lambda kv: -kv[1])
    text += [f"| `{name}` | {value:,.1f} |" for name, value in largest_first if value]
    text.append("")
    return text

    return "\n".join(text)


def _resolution(unify: dict[str, Any] | None, results_dir: Path) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    text = ["## Identity resolution against networkx and DuckDB", ""]
    details = (unify or {}).get("details", {}).get("a")
    if not unify or not details:
        return "\n".join([*text, "Not measured (run `python -m benchmarks.unify`).", ""]), []
    # The target is re-resolving the stored log (issue 7, point 4); runs before it was measured
    # fall back to the resolution during ingest.
    reresolution = details.get("reresolution")
    engine_name = "Tributary re-resolution" if reresolution else "Tributary engine"
    engine_s = reresolution["seconds"] if reresolution else details["engine"]["seconds"]
    seconds = {
        engine_name: engine_s,
        "networkx": details["networkx_s"],
        "DuckDB": details["duckdb"]["seconds"],
    }
    if reresolution:
        seconds["Tributary ingest (acked)"] = details["engine"]["seconds"]
    charts.resolution_chart(
        seconds,
        results_dir / "resolution.png",
        engine=engine_name,
        targets=RESOLUTION_TARGETS,
        subtitle=f"{details['people']:,} people, {details['events']:,} events; {_origin(unify, 'unify run')}",
        quick=_is_quick(unify),
    )
    found = []
    for base, factor in RESOLUTION_TARGETS.items():
        ratio = seconds[base] / engine_s if engine_s else 0.0
        found.append(
            (
                _CHART_TITLES["resolution"],
                {
                    "target": f"resolution ≥ {factor:g}x {base}",
                    "measured": f"{ratio:.2f}x ({base}: {seconds[base]:.2f} s)",
                    "met": ratio >= factor,
                },
            )
        )
    text += [
        "![Identity resolution against networkx and DuckDB](resolution.png)",
        "",
        f"Connected components of the same identifier graph ({details['people']:,} people, "
        f"{details['identifiers']:,} identifiers). Tributary re-resolves the stored log in bulk (a dry-run rule "
        "change under the rules in force: read and decode on every core, canonical order, flat matching, and "
        "a comparison with the live graph"
        + (f", which found {reresolution['profiles_changed']} profiles that would change" if reresolution else "")
        + "); the ingest bar is the same events ingested in-process, durable, each resolved before its ack. "
        "networkx and DuckDB compute components of the edge list. "
        f"{details.get('mismatch_count', 0)} of {details.get('verified_sample', 0):,} sampled profiles "
        "differ from their component. Details in [unify.md](unify.md).",
        "",
    ]
    if any(not row["met"] for _, row in found):
        title = "the engine's in-process ingest with resolution"
        fallback = _how_to_profile("python -m benchmarks.unify --only a")
        text.append(hot_path_section(title, details.get("profile"), fallback=fallback))
    return "\n".join(text), found


def _lookup_targets(unify: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """The profile-lookup targets of the Unify run (part b), as its table states them."""
    rows = []
    for figure in (unify or {}).get("figures", []):
        if figure.get("part") != "b" or not figure.get("target") or figure.get("measured") is None:
            continue
        unit = figure["unit"]
        value = f"{figure['measured']:,.0f}/s" if unit == "/s" else f"{figure['measured']:.2f} {unit}"
        if figure.get("baseline") is not None:
            base = figure["baseline"]
            value += f" ({figure['baseline_name']}: " + (f"{base:,.0f}/s)" if unit == "/s" else f"{base:.2f} {unit})")
        target = {"target": f"{figure['name']}: {figure['target']}", "measured": value, "met": figure.get("met")}
        rows.append(("[lookups](unify.md)", target))
    return rows


def _http(http: dict[str, Any] | None, results_dir: Path) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The HTTP benchmark's section, with the profile of each request whose target is missed."""
    if not http:
        return http_report.section({}, results_dir, origin="", quick=False), []
    found = http_report.targets(http)
    text = [http_report.section(http, results_dir, origin=_origin(http, "http run"), quick=_is_quick(http))]
    commands = {"tracking": "`POST /v1/batch`", "traits": "`GET …/traits`"}
    for key, request in commands.items():
        missed = [t for t in found if t["run"] == key and t["met"] is False]
        if missed:
            run = http.get("runs", {}).get(key, {}).get("tributary", {})
            fallback = _how_to_profile(f"python -m benchmarks.http_api --only {key}")
            title = f"{request} (server and wrk), " + "; ".join(t["measured"] for t in missed)
            rate = run.get("details", {}).get("profiled_run_requests_per_s")
            title += f"; profiled run: {rate:,.0f} requests/s" if rate else ""
            text.append(hot_path_section(title, run.get("profile"), fallback=fallback))
    return "\n".join(text), [(_CHART_TITLES["http"], t) for t in found]


def _with_profiles(document: dict[str, Any] | None, report: Any, run: str, module: str) -> str:
    """A benchmark's section (Engage, Predictions), with the profile of each part whose target is
    missed; ``report`` is its report module (``section``, ``PROFILED``, ``measured``)."""
    if not document:
        return str(report.section(None, origin=""))
    text = [str(report.section(document, origin=_origin(document, run)))]
    for part, (call, figure_name) in report.PROFILED.items():
        figures = document.get("figures", [])
        missed = [f for f in figures if f["part"] == part and f["name"].startswith(figure_name) and f["met"] is False]
        if missed:
            title = f"`{call}`, " + "; ".join(report.measured(f) + f" against {f['target']}" for f in missed)
            profile = document.get("details", {}).get(part, {}).get("profile")
            fallback = _how_to_profile(f"python -m benchmarks.{module} --only {part}")
            text.append(hot_path_section(title, profile, fallback=fallback))
    return "\n".join(text)


def _audiences(audiences: dict[str, Any] | None) -> str:
    """The Engage benchmark's section, with the profile of each part whose target is missed."""
    return _with_profiles(audiences, audience_report, "audiences run", "audiences")


def _predictions(predictions: dict[str, Any] | None) -> str:
    """The Predictions benchmark's section, with the profile of each part whose target is missed."""
    return _with_profiles(predictions, prediction_report, "predictions run", "predictions")


def _connections(connections: dict[str, Any] | None, results_dir: Path) -> str:
    """The Connections benchmark's section, with the server's profile under each missed target."""
    if not connections:
        return connections_report.section(None, results_dir, origin="", quick=False)
    origin = _origin(connections, "connections run")
    text = [connections_report.section(connections, results_dir, origin=origin, quick=_is_quick(connections))]
    for target in connections_report.targets(connections):
        if target["met"] is False and target["run"] in connections_report.PROFILED:
            run, what = connections_report.PROFILED[target["run"]]
            profile = connections["runs"][target["run"]][run].get("profile")
            fallback = _how_to_profile(f"python -m benchmarks.connections --only {target['run']}")
            text.append(hot_path_section(f"{what} (server), {target['measured']}", profile, fallback=fallback))
    return "\n".join(text)


_METHOD = """## How each path is measured

- **raw LMDB (a)**: the event bytes put under random 16-byte keys with py-lmdb, 10 k puts per
  transaction, fsync on every commit, in-process: no gRPC, decoding or dedupe. Every ratio is
  against this run's figure.
- **empty gRPC server (b)**: a grpcio server that acknowledges each batch by its sequence number
  without decoding it: what the transport and the client allow.
- **plain Python (c)**: a grpcio server with py-lmdb that decodes each batch, checks a messageId
  dedupe index and appends with fsync per group of waiting batches before acknowledging.
- **Tributary, pre-encoded stream**: `cdp serve` (identity resolution on, fsync'd acks) fed
  pre-encoded `StreamRequest`s of 500 events by a separate client process (window 16, and 4 for
  the latency target); its `RssAnon` is sampled along the run.
- **Client.stream(dicts)**: a separate process holds the workload as Segment-Spec dicts (built
  before the clock) and times `tributary.Client(...).stream(dicts)` with the library's defaults
  until the last ack.
- **cdp import FILE.jsonl**: the workload written as JSON lines beforehand; `cdp import --json`
  timed from process start to exit. Its start-up is the median of `cdp import` runs on an empty
  file against the same server, subtracted for the target's figure.
- Every run is checked: the acknowledgements (or the import's summary) add up to exactly the
  workload's events, all stored, none refused. Client and server share the 2-core machine.
- **Start-up**: one data directory filled in steps in-process (a tenth, three tenths and all of
  the workload), `cdp serve` started three times at each step and timed to the first health
  check answering SERVING (polled every 10 ms).
- **Memory**: `RssAnon` of the server process read from `/proc/PID/status` by the streaming
  client about 60 times along the pre-encoded run, against the events acknowledged so far.
- **Profiles**: perf (`-e cpu-clock`, 499 Hz, self time only) or py-spy on the measured
  processes during the measured run itself (perf costs well under 1 % of a core at that rate).
"""


def _and(items: Sequence[str]) -> str:
    return " and the ".join([", the ".join(items[:-1]), items[-1]] if len(items) > 2 else items)


def finish(results_dir: Path, files: str, table: str, errors: dict[str, str], started: float) -> int:
    """The end of a benchmark's run: writes the results page, prints the table, the parts that
    failed and what was written (``files``, besides the page); returns the exit status."""
    page = write_page(results_dir)
    print()
    print(table)
    for key, reason in errors.items():
        print(f"\n({key}) FAILED: {reason}", file=sys.stderr)
    written = f"{files}{', ' + page.name if page else ''}"
    print(f"\nwritten to {results_dir}/ ({written}) in {time.perf_counter() - started:.0f} s")
    return 1 if errors else 0


def write_page(results_dir: Path = RESULTS_DIR) -> Path | None:
    """Writes README.md and its charts from the JSON documents in ``results_dir``; returns the
    page's path, or None when there is nothing to show."""
    ingest = _load(results_dir / "ingest.json")
    unify = _load(results_dir / "unify.json")
    http = _load(results_dir / "http.json")
    audiences = _load(results_dir / audience_report.JSON)
    connections = _load(results_dir / connections_report.JSON)
    governance = _load(results_dir / governance_report.JSON)
    deletion = _load(results_dir / deletion_report.JSON)
    predictions = _load(results_dir / prediction_report.JSON)
    loaded = (ingest, unify, http, audiences, connections, governance, deletion, predictions)
    if all(doc is None for doc in loaded):
        return None
    ingest = ingest or {}
    found = targets(ingest) if ingest else []
    resolution_text, resolution_targets = _resolution(unify, results_dir)
    http_text, http_targets = _http(http, results_dir)
    rows: list[tuple[str, Target | dict[str, Any]]] = [(_CHART_TITLES[t.chart], t) for t in found]
    rows += resolution_targets + _lookup_targets(unify) + http_targets
    rows += [(_CHART_TITLES["audiences"], target) for target in audience_report.targets(audiences)]
    rows += [(_CHART_TITLES["connections"], target) for target in connections_report.targets(connections)]
    rows += [(_CHART_TITLES["governance"], target) for target in governance_report.targets(governance)]
    rows += [(_CHART_TITLES["deletion"], target) for target in deletion_report.targets(deletion)]
    rows += [(_CHART_TITLES["predictions"], target) for target in prediction_report.targets(predictions)]
    env = (
        ingest.get("environment")
        or (unify or {}).get("environment")
        or (http or {}).get("environment")
        or (audiences or {}).get("environment")
        or (connections or {}).get("environment")
        or (governance or {}).get("environment")
        or (deletion or {}).get("environment")
        or (predictions or {}).get("environment", {})
    )
    settings = ingest.get("settings", {})
    quick = any(_is_quick(document) for document in loaded)
    documents = (
        (ingest, "ingest run"),
        (unify, "unify run"),
        (http, "http run"),
        (audiences, "audiences run"),
        (connections, "connections run"),
        (governance, "governance run"),
        (deletion, "deletion run"),
        (predictions, "predictions run"),
    )
    origins = [_origin(doc, name) for doc, name in documents if doc]
    banner = (
        "> **QUICK RUN** (`make bench QUICK=1`): small event counts and fewer rounds, to check the harness. "
        "These figures are not measurements; `make bench` takes them.\n\n"
        if quick
        else ""
    )
    sections = [
        _throughput(ingest, results_dir, found) if ingest else "",
        _latency(ingest, results_dir, found) if ingest else "",
        _startup(ingest, results_dir, found) if ingest else "",
        _memory(ingest, results_dir, found) if ingest else "",
        resolution_text,
        http_text,
        _audiences(audiences),
        _connections(connections, results_dir),
        governance_report.section(
            governance,
            results_dir,
            origin=_origin(governance, "governance run") if governance else "",
            quick=_is_quick(governance),
        ),
        deletion_report.section(
            deletion,
            results_dir,
            origin=_origin(deletion, "deletion run") if deletion else "",
            quick=_is_quick(deletion),
        ),
        _predictions(predictions),
    ]
    errors = {
        **ingest.get("errors", {}),
        **{f"unify {k}": v for k, v in (unify or {}).get("errors", {}).items()},
        **{f"http {k}": v for k, v in (http or {}).get("errors", {}).items()},
        **{f"audiences {k}": v for k, v in (audiences or {}).get("errors", {}).items()},
        **{f"connections {k}": v for k, v in (connections or {}).get("errors", {}).items()},
        **{f"governance {k}": v for k, v in (governance or {}).get("errors", {}).items()},
        **{f"deletion {k}": v for k, v in (deletion or {}).get("errors", {}).items()},
        **{f"predictions {k}": v for k, v in (predictions or {}).get("errors", {}).items()},
    }
    failures = "".join(f"- {key} failed: {reason.splitlines()[0][:300]}\n" for key, reason in errors.items())
    failures = f"\nFailed runs:\n\n{failures}" if failures else ""
    body = "\n\n".join(section for section in sections if section)
    table = markdown_table(ingest) if ingest else "Not measured."
    page = f"""# Tributary benchmarks

{banner}Written by `make bench` from the {_and(origins)}; raw figures in
[`ingest.json`](ingest.json), [`unify.json`](unify.json), [`http.json`](http.json),
[`audiences.json`](audiences.json), [`connections.json`](connections.json),
[`governance.json`](governance.json), [`deletion.json`](deletion.json) and
[`predictions.json`](predictions.json).
{settings.get("events", 0):,} Segment-like events (~{settings.get("mean_event_bytes", 0):.0f} B; ~80 % track,
identify, page; 100 k users, ~10 events each), 500 per batch. Machine: {env.get("cpus", "?")} CPUs,
{env.get("platform", "?")}, Python {env.get("python", "?")}, grpcio {env.get("grpcio", "?")}. Clients and servers share
the machine.

## Targets

{_targets_table(rows)}
{failures}
{body}

## All ingest figures

{table}

Ratios are events/s of the row over the baseline's, measured in the same run. Ack latency is per
batch, from handing it to gRPC to its acknowledgement.

{_METHOD}"""
    path = results_dir / PAGE
    path.write_text(page)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    results_dir = Path(args[0]) if args else RESULTS_DIR
    path = write_page(results_dir)
    if path is None:
        print(
            "nothing to show: no ingest.json, unify.json, http.json, audiences.json, connections.json,"
            " governance.json, deletion.json or predictions.json"
            f" in {results_dir}",
            file=sys.stderr,
        )
        return 1
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
