"""The Engage benchmark's document (``results/audiences.json``), its table (``audiences.md``) and its
section of the results page. The page's part works on the JSON document alone, like the others.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.report import environment, measured_at
from benchmarks.unify_report import Figure, markdown_table

JSON = "audiences.json"
MARKDOWN = "audiences.md"
ANCHOR = "#engage-audiences-against-duckdb-and-pyroaring"

# The engine calls profiled while measured, shown under their missed targets: part → (the call,
# what the names of its figures start with).
PROFILED = {
    "b": ("Engine.preview_audience", "audience evaluation"),
    "c": ("Engine.check_membership", "one profile's membership"),
    "e": ("Engine.submit_stream with real-time audiences", "ingest keeping"),
}

_EXPLANATION = """## What is measured

- **Data** (`benchmarks/audience_workload.py`): profiles `u0` … `u<N-1>` with one identify of 20
  traits each (`plan` among free, basic, pro, enterprise: 50/25/18/7 %), then ten track events a
  profile on average over 90 days (log-normal activity, 50 names; `Order Completed` 13 % of events,
  `Churned` 0.2 %), whole-second times with an explicit `timestamp` (no clock-skew correction),
  the 90 days ending at the start of the run's UTC day (`now`: the real-time worker evaluates at
  the clock's time, so the data must be recent). Seeded; encoded as `StreamRequest` bytes with
  array operations, not protobuf objects.
- **(a) ingest**: the identifies (profile order), then the track events (time order), 500 a batch,
  through `Engine.submit_stream` in-process with 16 batches unacknowledged, fsync on, timed to the
  last acknowledgement (durable, identity resolved, Engage's indexes kept), no definition saved.
- **(b) the audience** `trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3
  AND NOT event('Churned').count() >= 1`, at `now`: Tributary's `Engine.preview_audience`
  (a full evaluation: the count and a sample; timed from Python, the call included) against the same
  audience in SQL on in-process DuckDB (`benchmarks/audience_duckdb.py`; `events(user_id, event, ts)`
  and `traits(user_id, plan, …)`, VARCHAR ids, fetching the member ids), over the events unsorted
  (shuffled) and sorted by (event, ts); DuckDB uses both cores. The three alternate, one untimed
  warm-up each; the ratio is of medians. The members must be the same set: Tributary's
  (`list_members` of the saved audience, `tp_…` ids mapped to `user_id`s with `batch_get_profiles`),
  DuckDB's over both tables and the generator's own (numpy).
- **(c) membership answers**: `Engine.check_membership` of random profiles (half of them members)
  and the audience's size, in-process, each call timed alone; beside them DuckDB answering the same
  (the audience's query for one `user_id`, and its `count(*)`, on the sorted table). The size is
  `get_audience`'s live size: the audience is saved first and its first real-time evaluation waited
  for (its timer set past the run, so that no re-evaluation falls into a timing).
- **(d) bitmaps**: AND and OR of the same sets (profiles with an event name, profiles with
  `plan = 'pro'`) with the Rust `roaring` crate the engine uses (`_core._time_bitmap_op`, its loop
  in Rust) and with pyroaring (CRoaring, from Python: one call an operation), alternating rounds,
  median round; each makes a new bitmap.
- **(e) the cost of real time** (`benchmarks/audience_realtime.py`): (a)'s batches into a fresh
  engine holding 20 audiences and 10 computed traits over this workload, saved before the first
  event, timed to the moment the real-time worker has written the last change the ingest caused
  (its thread's CPU time and the log both still for 1 s, read every 20 ms); the worker's timer
  (60 s, the default) re-evaluates the windowed definitions over every profile meanwhile. Against
  (a)'s events/s, measured the same run on the same bytes.
"""


def _environment() -> dict[str, Any]:
    env = environment()
    for package in ("duckdb", "pyroaring", "numpy"):
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = "not installed"
    return env


def write_results(
    results_dir: Path,
    *,
    figures: list[Figure],
    details: dict[str, Any],
    errors: dict[str, str],
    settings: dict[str, Any],
) -> str:
    """Writes audiences.json and audiences.md; returns the markdown table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    when = measured_at()
    env = _environment()
    document = {
        "benchmark": "audiences",
        "measured_at": when,
        "environment": env,
        "settings": settings,
        "figures": [asdict(f) for f in figures],
        "details": details,
        "errors": errors,
    }
    (results_dir / JSON).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    table = markdown_table(figures)
    failures = "".join(f"- ({part}) failed: {reason.splitlines()[0][:300]}\n" for part, reason in errors.items())
    text = f"""# Engage benchmark

Generated by `python -m benchmarks.audiences` on {when}; raw figures and details in `{JSON}`.
Parts run: {", ".join(settings["parts"])}; {settings["profiles"]:,} profiles, {settings["events"]:,} track events;
seed {settings["seed"]}. Machine: {env["cpus"]} CPUs, {env["platform"]}, Python {env["python"]}, DuckDB
{env["duckdb"]}, pyroaring {env["pyroaring"]}. Everything runs in one process on the same machine; the
audiences are evaluated at {settings.get("now", "?")}.

{table}

{failures}
{_EXPLANATION}"""
    (results_dir / MARKDOWN).write_text(text)
    return table


def measured(figure: dict[str, Any]) -> str:
    """A figure as the targets table says it: ratio, value, and the baseline's value beside."""
    unit, value = figure["unit"], figure["measured"]

    def said(number: float) -> str:
        if unit == "/s":
            return f"{number:,.0f}/s"
        if unit == "":
            return f"{number:,.0f}"
        return f"{number:.3g} {unit}" if number < 10 else f"{number:,.1f} {unit}"

    text = "—" if value is None else said(value)
    if figure.get("ratio") is not None:
        text = f"{figure['ratio']:.2f}x: {text}"
    if figure.get("baseline") is not None:
        text += f" ({figure['baseline_name']}: {said(figure['baseline'])})"
    return text


def targets(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of the page's targets table: ``{"target", "measured", "met"}``."""
    rows = []
    for figure in (document or {}).get("figures", []):
        if figure.get("target"):
            goal = f"{figure['name']}: {figure['target']}"
            rows.append({"target": goal, "measured": measured(figure), "met": figure.get("met")})
    return rows


def section(document: dict[str, Any] | None, *, origin: str) -> str:
    """The results page's section: the figures' table, and where the details are."""
    text = ["## Engage: audiences against DuckDB and pyroaring", ""]
    if not document:
        return "\n".join([*text, "Not measured (run `python -m benchmarks.audiences`).", ""])
    settings = document.get("settings", {})
    figures = [Figure(**figure) for figure in document.get("figures", [])]
    text += [
        f"From the {origin}: {settings.get('profiles', 0):,} profiles (20 traits each) and "
        f"{settings.get('events', 0):,} track events over 90 days, in-process. Every ratio is against a "
        "baseline measured in the same run; method and details in [audiences.md](audiences.md).",
        "",
        markdown_table(figures),
        "",
    ]
    return "\n".join(text)
