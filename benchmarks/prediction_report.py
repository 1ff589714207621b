"""The Predictions benchmark's document (``results/predictions.json``), its tables
(``predictions.md``) and its section of the results page. The page's part works on the JSON
document alone, like the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.audience_report import measured, targets
from benchmarks.report import environment, measured_at
from benchmarks.unify_report import Figure, failure_lines, markdown_table, write_figures_json

JSON = "predictions.json"
MARKDOWN = "predictions.md"
ANCHOR = "#predictions-features-training-and-scoring-against-duckdb-and-lightgbm"
TITLE = "## Predictions: features, training and scoring against DuckDB and LightGBM"

# The calls profiled while measured, shown under their missed targets: part → (the call, what the
# names of its figures start with: in (c) the refresh's seconds and its scoring rate).
PROFILED = {
    "b": ("Predictions.train", "training"),
    "c": ("Predictions.score, the daily refresh", "daily refresh"),
    "d": ("Engine.submit_stream during a background refresh", "ingest during"),
}

__all__ = ["JSON", "MARKDOWN", "PROFILED", "measured", "section", "targets", "write_results"]

_EXPLANATION = """## What is measured

- **Data** (`benchmarks/prediction_workload.py`): profiles `u0` … `u<N-1>` with one identify of 20
  traits each, then ten track events a profile on average over the year ending at `now` (the start
  of the run's UTC day): each profile arrives in the year's first 70 %, is active at a log-normal
  rate until it leaves (exponential lifetime, mean 240 days) and buys (`Order Completed`, with a
  `revenue`) with its own share of its events. Seeded; encoded with the Engage workload's array
  encoders (`identify_batches`, `track_batches`).
- **(a) ingest**: the identifies, then the track events in time order, 500 a batch, through
  `Engine.submit_stream` in-process with 16 batches unacknowledged, fsync on, timed to the last
  acknowledgement. The same engine is trained, scored and ingested into by (b) to (d).
- **(b) training**: `Predictions.train` of `purchase_30d` (goal `event('Order Completed')`, 30-day
  horizon) at `now`, wall-clock: the engine's point-in-time rows at the test, validation and up to
  six training cutoffs (30 days apart), the leak checks, both candidates (LightGBM and the linear
  baseline), calibration, the test metrics and the charts; its stages (`Predictions.timings["train"]`)
  beside. Baseline (`benchmarks/prediction_duckdb.py`): DuckDB (2 threads) computing the same
  columns at the same cutoffs with labels, then `lightgbm.train` with the product's
  `LIGHTGBM_PARAMS` on 2 threads for the rounds the product's LightGBM candidate took (or 400 with
  early stopping when the linear model won). Ratio: the baseline's seconds over ours. The baseline
  does not fit a second candidate, calibrate, check for leaks, read the scoring rows or draw charts.
- **(c) scoring, the model fixed**: `Predictions.score` at `now` (the first scoring: every
  profile's three traits written), then at `now + 1 day` (the daily refresh: only the profiles whose
  traits changed are written), each timed wall-clock with its stages (`Predictions.timings["score"]`).
  Baseline of both: DuckDB's features at the same time and `Booster.predict` of the published
  model on them, nothing written. The scoring rate counts the refresh's profiles over the seconds
  of its stages between the features and the writes (every stage but `features_s`, `write_s` and
  `snapshot_s`; the stages counted are listed under the table), against `Booster.predict` of the
  same model on the same rows (2 threads, median of 3 calls). Score traits written per second
  are the profiles written (one identify of three traits each) over `write_s`, against (a)'s
  identifies per second.
- **(d) ingest during a refresh**: rounds of two fresh sets of a day of live events (each a tenth
  of the events; new seeds, so new message ids) into (a)'s engine: the first alone, the second
  while a background thread scores in a loop at later and later days (so it writes), as the
  server's scheduler thread does. The median events/s of each, against the alone ones, over the
  phases no identity snapshot paused (the engine writes one every 2M events, pausing resolution
  for seconds at this size, whether a refresh runs or not; a phase it paused is listed in
  `predictions.json` with `"snapshot": true`).
- DuckDB leaves out what the engine does besides: the log's clock (point in time by log position),
  identity resolution (a user id is a profile here), the leak guard, traits, populations, writes.
"""


def _seconds(value: Any) -> str:
    return "—" if value is None else f"{value:,.2f} s"


def _training_table(training: dict[str, Any] | None) -> str:
    if not training or "seconds" not in training:
        return ""
    ours, base = training, training.get("baseline", {})
    stages = ", ".join(f"{key} {value:,.2f}" for key, value in ours.get("timings", {}).items())
    base_stages = f"features {base.get('features_s', 0):,.2f}, fit {base.get('fit_s', 0):,.2f}" if base else "—"

    def auc(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = [
        "### Training",
        "",
        "| | Tributary | DuckDB + LightGBM |",
        "|---|--:|--:|",
        f"| seconds | {_seconds(ours.get('seconds'))} | {_seconds(base.get('seconds'))} |",
        f"| stages (s) | {stages} | {base_stages} |",
        f"| training rows (positives) | {ours.get('rows', 0):,} ({ours.get('positives', 0):,}) "
        f"| {base.get('rows', 0):,} ({base.get('positives', 0):,}) |",
        f"| cutoffs | {ours.get('cutoff_count', 0)} | {ours.get('cutoff_count', 0)} |",
        f"| model | {ours.get('winner', '?')}, {ours.get('rounds', '?')} rounds "
        f"| lightgbm, {base.get('rounds', '?')} rounds |",
        f"| test AUC | {auc(ours.get('test_auc'))} | {auc(base.get('test_auc'))} |",
        "",
    ]
    return "\n".join(lines)


def _scoring_table(scoring: dict[str, Any] | None) -> str:
    if not scoring or "refresh" not in scoring:
        return ""
    lines = [
        "### Scoring",
        "",
        "| | profiles | written | unchanged | seconds | stages (s) | DuckDB features + predict (s) |",
        "|---|--:|--:|--:|--:|---|--:|",
    ]
    for key, label in (("first", "first scoring at `now`"), ("refresh", "daily refresh at `now + 1 day`")):
        run = scoring.get(key)
        if not run:
            continue
        stages = ", ".join(f"{k} {v:,.2f}" for k, v in run["timings"].items())
        base = run.get("baseline") or {}
        lines.append(
            f"| {label} | {run['outcome']['profiles']:,} | {run['outcome']['written']:,} "
            f"| {run['outcome']['unchanged']:,} | {run['seconds']:,.2f} | {stages} "
            f"| {base.get('features_s', 0):,.2f} + {base.get('predict_s', 0):,.3f} |"
        )
    counted = ", ".join(f"`{key}`" for key in scoring.get("scoring_stages", []))
    lines += ["", f"The scoring rate counts the refresh's stages {counted or '(none)'}.", ""]
    return "\n".join(lines)


def write_results(
    results_dir: Path,
    *,
    figures: list[Figure],
    details: dict[str, Any],
    errors: dict[str, str],
    settings: dict[str, Any],
) -> str:
    """Writes predictions.json and predictions.md; returns the markdown table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    when = measured_at()
    env = environment("duckdb", "lightgbm", "numpy", "pyarrow")
    write_figures_json(
        results_dir / JSON,
        "predictions",
        when=when,
        env=env,
        figures=figures,
        details=details,
        errors=errors,
        settings=settings,
    )
    table = markdown_table(figures)
    text = f"""# Predictions benchmark

Generated by `python -m benchmarks.predictions` on {when}; raw figures and details in `{JSON}`.
Parts run: {", ".join(settings["parts"])}; {settings["profiles"]:,} profiles, {settings["events"]:,} track events
over a year ending at {settings.get("now", "?")}; seed {settings["seed"]}. Machine: {env["cpus"]} CPUs,
{env["platform"]}, Python {env["python"]}, DuckDB {env["duckdb"]}, LightGBM {env["lightgbm"]}. Everything
runs in one process on the same machine, one thing at a time except in (d).

{table}

{failure_lines(errors)}
{_training_table(details.get("b"))}
{_scoring_table(details.get("c"))}
{_EXPLANATION}"""
    (results_dir / MARKDOWN).write_text(text)
    return table


def section(document: dict[str, Any] | None, *, origin: str) -> str:
    """The results page's section: the figures' table, and where the details are."""
    text = [TITLE, ""]
    if not document:
        return "\n".join([*text, "Not measured (run `python -m benchmarks.predictions`).", ""])
    settings = document.get("settings", {})
    figures = [Figure(**figure) for figure in document.get("figures", [])]
    text += [
        f"From the {origin}: {settings.get('profiles', 0):,} profiles and {settings.get('events', 0):,} track "
        "events over a year, in-process; the prediction `purchase_30d` (an order in the next 30 days). Every "
        "ratio is against a baseline measured in the same run (DuckDB's features and LightGBM for training and "
        "scoring, ingest alone for ingest during a refresh); method and details in "
        "[predictions.md](predictions.md).",
        "",
        markdown_table(figures),
        "",
    ]
    return "\n".join(text)
