"""Checks of the Predictions benchmark's harness: the data it generates, the DuckDB baseline's
features against the engine's own rows, and one small run of the whole benchmark (it trains: 10,000
profiles pass the gates). Small inputs; nothing here holds a time to a bound."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from benchmarks import audience_workload as aw
from benchmarks import prediction_duckdb, prediction_report, predictions
from benchmarks import prediction_workload as pw
from benchmarks.unify_engine import ingest, open_engine
from cdp_server.predictions.definitions import DAY_MS, goal_condition
from cdp_server.predictions.pipeline import day_end, fetch_rows

PROFILES = 2_000
EVENTS = 20_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["Order Completed", "Page Viewed", "Product Viewed", "Churned"]
# The engine's and DuckDB's values of these columns must be equal, not close.
COUNTS = [
    "events_total",
    "Order Completed.count_30d",
    "Order Completed.count_all",
    "Order Completed.active_days_365d",
    "Order Completed.week_0",
    "Page Viewed.count_7d",
    "Page Viewed.count_365d",
    "Product Viewed.week_3",
    "Churned.count_all",
]
SAMPLE = 60


@pytest.fixture(scope="module")
def data() -> pw.PredictionData:
    return pw.generate(PROFILES, EVENTS, seed=7, now=NOW)


def test_the_workload_is_deterministic_for_a_seed_and_has_its_shape(data: pw.PredictionData) -> None:
    again = pw.generate(PROFILES, EVENTS, seed=7, now=NOW)
    assert np.array_equal(again.user, data.user) and np.array_equal(again.ts, data.ts)
    assert np.array_equal(again.name, data.name) and np.array_equal(again.variant, data.variant)
    assert aw.track_batches(again, 1)[:3] == aw.track_batches(data, 1)[:3]
    assert not np.array_equal(pw.generate(PROFILES, EVENTS, seed=8, now=NOW).user, data.user)
    assert data.n_events == EVENTS and data.n_profiles == PROFILES
    assert data.start_s == data.now_s - pw.DAYS * aw.DAY_S and data.now_s == NOW.timestamp()
    assert np.all(np.diff(data.ts) >= 0) and data.ts.min() >= data.start_s and data.ts.max() < data.now_s
    assert np.all(data.name != aw.EVENT_NAMES.index(aw.CHURNED))
    assert 0.05 < np.mean(data.name == 0) < 0.25
    extra = pw.extra_events(data, 500, seed=1)
    assert extra.n_events == 500 and np.all(np.diff(extra.ts) >= 0)
    assert extra.ts.min() >= data.now_s - aw.DAY_S and extra.ts.max() < data.now_s
    other = pw.extra_events(data, 500, seed=2)
    assert aw.track_batches(extra, 1)[0] != aw.track_batches(other, 1)[0]


def test_duckdb_features_and_labels_agree_with_the_engines_rows(data: pw.PredictionData, tmp_path: Path) -> None:
    identifies = aw.identify_batches(data)
    tracks = aw.track_batches(data, len(identifies) + 1)
    con = prediction_duckdb.connect(data)
    cutoff = day_end(data.now_s * 1000 - 45 * DAY_MS)
    horizon = 30 * DAY_MS
    label = {"horizon_ms": horizon, "condition": goal_condition(["event('Order Completed')"], 30)}
    duck = prediction_duckdb.features(con, NAMES, cutoff, goals=["Order Completed"], horizon_ms=horizon)
    oracle = pw.purchased_between(data, cutoff // 1000, (cutoff + horizon) // 1000)
    assert np.array_equal(duck.labels, oracle[duck.users].astype(np.float64)) and duck.labels.sum() > 0
    with open_engine(tmp_path / "data", source="prediction-harness") as (engine, source_id):
        assert ingest(engine, source_id, identifies).accepted == PROFILES
        assert ingest(engine, source_id, tracks).accepted == EVENTS
        everyone = fetch_rows(engine, NAMES, cutoff)
        assert everyone.columns == duck.columns and everyone.features.shape == duck.values.shape
        sample = np.random.default_rng(3).choice(duck.users, size=SAMPLE, replace=False)
        for user in sample:
            row = duck.users.tolist().index(user)
            engine_row = fetch_rows(engine, NAMES, cutoff, profiles=[f"user_id:u{user}"], label=label)
            assert engine_row.ids.shape == (1,)
            ours = dict(zip(engine_row.columns, engine_row.features[0].tolist(), strict=True))
            theirs = dict(zip(duck.columns, duck.values[row].tolist(), strict=True))
            assert {c: ours[c] for c in COUNTS} == {c: theirs[c] for c in COUNTS}, f"u{user}"
            assert engine_row.labels.tolist() == [duck.labels[row]]


def test_a_small_run_has_every_figure_with_its_baseline(tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = ["--scale", "0.01", "--rounds", "2", "--results-dir", str(results), "--tmp-dir", str(tmp_path)]
    status = predictions.main([*argv, "--profile", "off", "--no-settle"])
    document = json.loads((results / prediction_report.JSON).read_text())
    assert document["errors"] == {} and status == 0
    figures = document["figures"]
    assert {figure["part"] for figure in figures} == set(predictions.PARTS)
    assert all(figure["measured"] is not None for figure in figures)
    compared = [figure for figure in figures if figure["part"] != "a"]
    assert all(f["baseline"] is not None and f["ratio"] is not None and f["baseline_name"] for f in compared)
    assert {figure["part"] for figure in figures if figure["target"]} == {"b", "c", "d"}
    details = document["details"]
    assert details["a"]["tracks"]["accepted"] == 100_000 and details["a"]["identifies"]["accepted"] == 10_000
    training = details["b"]
    assert training["rows"] == training["baseline"]["rows"] > 0 and training["test_auc"] > 0.65
    assert set(training["timings"]) >= {"rows_s", "fit_s"}
    scoring = details["c"]
    assert scoring["first"]["outcome"]["written"] == scoring["first"]["outcome"]["profiles"] > 0
    assert scoring["refresh"]["baseline"]["rows"] == scoring["refresh"]["outcome"]["profiles"]
    assert scoring["scoring_stages"] and "features_s" not in scoring["scoring_stages"]
    rounds = details["d"]["rounds"]
    assert len(rounds) == 2 and all(r["during_refresh"]["accepted"] == 10_000 for r in rounds)
    assert all(r["refreshes"] and r["refreshes"][0]["outcome"]["profiles"] > 0 for r in rounds)
    markdown = (results / prediction_report.MARKDOWN).read_text()
    assert "| figure | measured | baseline | ratio | target | met? |" in markdown
    assert "### Training" in markdown and "### Scoring" in markdown
    page = (results / "README.md").read_text()
    assert prediction_report.TITLE in page and f"[Predictions]({prediction_report.ANCHOR})" in page


def test_the_engines_snapshot_pauses_are_read_from_its_log(data: pw.PredictionData, tmp_path: Path) -> None:
    """(d) leaves out phases an identity snapshot paused: it finds the pauses in the engine's own
    log lines (a change of their wording must fail here, not silently find none)."""
    pauses = predictions._SnapshotPauses()
    logger = logging.getLogger(predictions.SNAPSHOT_LOGGER)
    logger.setLevel(logging.INFO)
    logger.addHandler(pauses)
    try:
        before = time.time()
        with open_engine(tmp_path / "data", snapshot_every_events=5_000) as (engine, source_id):
            ingest(engine, source_id, aw.track_batches(data, 1))
            deadline = time.time() + 30
            while not pauses.pauses and time.time() < deadline:
                time.sleep(0.05)
        after = time.time()
    finally:
        logger.removeHandler(pauses)
    assert pauses.pauses, "no snapshot pause was read from the engine's log"
    start, end = pauses.pauses[0]
    assert before <= start <= end <= after
    assert pauses.within(start - 1, start + 0.001) and not pauses.within(after, after + 1)
