"""The Predictions benchmark's baseline: the model's point-in-time features as SQL in in-process
DuckDB, then LightGBM on them: what a team would build with a warehouse and LightGBM.

One table, ``events(user_id INTEGER, name SMALLINT, ts BIGINT, revenue DOUBLE)`` (ts in ms, the
name as its index in ``EVENT_NAMES``, revenue where the event's properties carry one: the
workload's ``Order Completed``, else NULL), is loaded from the generator's numpy columns through
pyarrow (no Python object per row), in time order as an append-only event table holds it. Loading
is not timed.

For a cutoff ``t`` the features are two GROUP BY queries over the events with ``ts <= t`` of the
names the model reads: per (user, name) the FILTERed aggregates of the engine's columns
(``rust_core/engine/src/predict/features.rs``: counts over 7/30/90/180/365 days and all time,
active days over 365 days and all time, days since the last and the first, revenue over
30/90/365 days and all time, and a count for each of the last 8 weeks; windows ``(t - w, t]``),
and per user the columns over all those names (tenure, days since last, events, the mean and the
last gap). Both come back as numpy arrays and are pivoted with numpy into a (profiles x columns)
float32 matrix with the engine's column names: a name a profile never used has zero counts and
revenue and no days (NaN), as in the engine. A label, when asked, is a third query: the users
with a goal event in ``(t, t + horizon]``.

What it leaves out, and the engine does: the log's clock (an event counts at ``t`` only if it was
in the log when its clock stood at ``t``; this data is loaded in time order, so every event with
``ts <= t`` was), identity resolution (one user id is one profile here), the leak guard, traits,
a population audience, and writing anything back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import lightgbm as lgb
import numpy as np
import pyarrow as pa

from benchmarks.audience_workload import EVENT_NAMES, PROPERTY_VARIANTS, AudienceData, _properties
from cdp_server.predictions import model, pipeline, quality

DAY_MS = 86_400_000
COUNT_WINDOWS = (7, 30, 90, 180, 365)
REVENUE_WINDOWS = (30, 90, 365)
WEEKS = 8
THREADS = 2
PROFILE_COLUMNS = ("tenure_days", "days_since_last", "events_total", "gap_mean_days", "gap_last_days")
NAME_COLUMNS = (
    *(f"count_{w}d" for w in COUNT_WINDOWS),
    "count_all",
    "active_days_365d",
    "active_days_all",
    "days_since_last",
    "days_since_first",
    *(f"revenue_{w}d" for w in REVENUE_WINDOWS),
    "revenue_all",
    *(f"week_{k}" for k in range(WEEKS)),
)
# The per-name columns without a value when a profile never used the name (the rest are 0).
_NEVER = ("days_since_last", "days_since_first")


def connect(data: AudienceData, *, threads: int = THREADS) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB (``threads`` threads) holding ``events`` of the generated track events."""
    # Each (name, variant)'s revenue as the engine reads it from the properties: "revenue", else "total".
    found = [json.loads(_properties(name, variant)) for name in EVENT_NAMES for variant in range(PROPERTY_VARIANTS)]
    table = np.array([float(body.get("revenue", body.get("total", np.nan))) for body in found])
    revenue = table[data.name.astype(np.int64) * PROPERTY_VARIANTS + data.variant]
    columns = pa.table(
        {
            "user_id": pa.array(data.user),
            "name": pa.array(data.name.astype(np.int16)),
            "ts": pa.array(data.ts * 1000),
            "revenue": pa.array(revenue, mask=np.isnan(revenue)),
        }
    )
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {threads}")
    con.register("event_columns", columns)
    con.execute(
        "CREATE TABLE events AS SELECT user_id::INTEGER AS user_id, name::SMALLINT AS name, ts::BIGINT AS ts, "
        "revenue::DOUBLE AS revenue FROM event_columns"
    )
    con.unregister("event_columns")
    return con


def name_indices(names: list[str]) -> list[int]:
    """The names' indices in ``EVENT_NAMES`` (the table's ``name``)."""
    unknown = [name for name in names if name not in EVENT_NAMES]
    if unknown:
        raise ValueError(f"names the workload does not have: {unknown}")
    return [EVENT_NAMES.index(name) for name in names]


def sample_sql(share: float | None) -> str:
    """A condition keeping about ``share`` of the users (by a hash of the id, the same ones at every
    cutoff), as the engine samples a training's profiles (``max_profiles``); none for all."""
    if share is None or share >= 1.0:
        return ""
    return f" AND hash(user_id) % 1000000 < {round(share * 1_000_000)}"


def name_sql(names: list[str], t: int, share: float | None = None) -> str:
    """Per (user, name): the engine's per-name columns at the cutoff ``t`` (ms)."""

    def since(days: int) -> int:
        return t - days * DAY_MS

    aggregates = [f"count(*) FILTER (WHERE ts > {since(w)}) AS count_{w}d" for w in COUNT_WINDOWS]
    aggregates += [
        "count(*) AS count_all",
        f"count(DISTINCT ts // {DAY_MS}) FILTER (WHERE ts > {since(365)}) AS active_days_365d",
        f"count(DISTINCT ts // {DAY_MS}) AS active_days_all",
        f"({t} - max(ts))::DOUBLE / {DAY_MS}.0 AS days_since_last",
        f"({t} - min(ts))::DOUBLE / {DAY_MS}.0 AS days_since_first",
    ]
    aggregates += [f"coalesce(sum(revenue) FILTER (WHERE ts > {since(w)}), 0) AS revenue_{w}d" for w in REVENUE_WINDOWS]
    aggregates.append("coalesce(sum(revenue), 0) AS revenue_all")
    aggregates += [
        f"count(*) FILTER (WHERE ts > {since(7 * (k + 1))} AND ts <= {since(7 * k)}) AS week_{k}" for k in range(WEEKS)
    ]
    listed = ", ".join(map(str, name_indices(names)))
    return (
        "SELECT user_id, name,\n  "
        + ",\n  ".join(aggregates)
        + f"\nFROM events WHERE ts <= {t} AND name IN ({listed}){sample_sql(share)}\nGROUP BY user_id, name"
    )


def profile_sql(names: list[str], t: int, share: float | None = None) -> str:
    """Per user: the engine's columns over all the names, at the cutoff ``t`` (ms)."""
    listed = ", ".join(map(str, name_indices(names)))
    return f"""SELECT user_id,
  ({t} - min(ts))::DOUBLE / {DAY_MS}.0 AS tenure_days,
  ({t} - max(ts))::DOUBLE / {DAY_MS}.0 AS days_since_last,
  count(*) AS events_total,
  CASE WHEN count(*) >= 2 THEN (max(ts) - min(ts))::DOUBLE / (count(*) - 1) / {DAY_MS}.0 END AS gap_mean_days,
  (max(ts) - max(ts, 2)[2])::DOUBLE / {DAY_MS}.0 AS gap_last_days
FROM events WHERE ts <= {t} AND name IN ({listed}){sample_sql(share)}
GROUP BY user_id"""


def label_sql(goals: list[str], t: int, horizon_ms: int, share: float | None = None) -> str:
    """The users with a goal event in ``(t, t + horizon]``."""
    listed = ", ".join(map(str, name_indices(goals)))
    return (
        f"SELECT DISTINCT user_id FROM events WHERE name IN ({listed}) AND ts > {t} AND ts <= {t + horizon_ms}"
        + sample_sql(share)
    )


@dataclass
class Features:
    """Rows at one cutoff: the profile numbers (``u<N>``), the engine's columns, the labels (empty
    without), and the seconds of the queries (fetch included) and of the pivot."""

    users: np.ndarray
    columns: list[str]
    values: np.ndarray
    labels: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)

    def select(self, columns: list[str]) -> np.ndarray:
        """The matrix of ``columns`` (by name), in that order."""
        at = {column: i for i, column in enumerate(self.columns)}
        return self.values[:, [at[column] for column in columns]]


def _numbers(column: Any) -> np.ndarray:
    """A fetched column as float64, NULL as NaN."""
    return np.asarray(np.ma.filled(np.ma.asarray(column).astype(np.float64), np.nan))


def columns_of(names: list[str]) -> list[str]:
    return [*PROFILE_COLUMNS, *(f"{name}.{column}" for name in names for column in NAME_COLUMNS)]


def features(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    t: int,
    *,
    goals: list[str] | None = None,
    horizon_ms: int = 0,
    share: float | None = None,
) -> Features:
    """The rows of every user with an event of ``names`` at or before ``t`` (ms) (of about ``share``
    of them); labelled when ``goals`` are given."""
    started = time.perf_counter()
    per_name = con.execute(name_sql(names, t, share)).fetchnumpy()
    per_user = con.execute(profile_sql(names, t, share)).fetchnumpy()
    positive = con.execute(label_sql(goals, t, horizon_ms, share)).fetchnumpy()["user_id"] if goals else None
    queried = time.perf_counter()
    users = np.asarray(per_user["user_id"], dtype=np.int32)
    width = len(PROFILE_COLUMNS) + len(names) * len(NAME_COLUMNS)
    values = np.empty((users.shape[0], width), dtype=np.float32)
    for j, column in enumerate(PROFILE_COLUMNS):
        values[:, j] = _numbers(per_user[column])
    block = np.array([np.nan if column in _NEVER else 0.0 for column in NAME_COLUMNS], dtype=np.float32)
    values[:, len(PROFILE_COLUMNS) :] = np.tile(block, len(names))
    row_of = np.full(int(users.max()) + 1 if users.size else 1, -1, dtype=np.int64)
    row_of[users] = np.arange(users.shape[0])
    position = np.full(len(EVENT_NAMES), -1, dtype=np.int64)
    position[name_indices(names)] = np.arange(len(names))
    rows = row_of[np.asarray(per_name["user_id"], dtype=np.int64)]
    base = len(PROFILE_COLUMNS) + position[np.asarray(per_name["name"], dtype=np.int64)] * len(NAME_COLUMNS)
    for j, column in enumerate(NAME_COLUMNS):
        values[rows, base + j] = _numbers(per_name[column])
    labels = np.isin(users, np.asarray(positive)).astype(np.float64) if positive is not None else np.zeros(0)
    done = time.perf_counter()
    seconds = {"query_s": round(queried - started, 3), "pivot_s": round(done - queried, 3)}
    return Features(users, columns_of(names), values, labels, seconds)


def lightgbm_params(seed: int) -> dict[str, Any]:
    """The product's LightGBM parameters for a binary label, on both cores."""
    return {
        **model.LIGHTGBM_PARAMS,
        "objective": "binary",
        "metric": "binary_logloss",
        "num_threads": THREADS,
        "seed": seed,
        "verbosity": -1,
    }


@dataclass
class Training:
    """The baseline's training: its booster, the seconds of each stage, the rows and the test AUC
    (measured after the clock)."""

    booster: lgb.Booster
    features_s: float
    fit_s: float
    rounds: int
    early_stopping: bool
    rows: int
    positives: int
    test_auc: float
    cutoff_seconds: dict[str, dict[str, float]]

    @property
    def seconds(self) -> float:
        return self.features_s + self.fit_s


def train(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    goals: list[str],
    cutoffs: dict[str, Any],
    horizon_ms: int,
    feature_names: list[str],
    *,
    rounds: int | None,
    seed: int,
    profiles: int,
) -> Training:
    """The features of every cutoff (test, validation, train), then ``lightgbm.train`` on the train
    cutoffs' rows: ``rounds`` rounds, or ``model.MAX_ROUNDS`` stopped early on the validation rows.
    Each cutoff reads a sample of the ``profiles`` users as large as the engine's
    (``pipeline.TRAINING_PROFILES``, ``EVALUATION_PROFILES``), so both train on as many rows."""
    started = time.perf_counter()
    evaluation = pipeline.EVALUATION_PROFILES / profiles
    training = pipeline.TRAINING_PROFILES / profiles
    labelled: dict[str, Any] = {"goals": goals, "horizon_ms": horizon_ms}
    test = features(con, names, cutoffs["test"], share=evaluation, **labelled)
    validation = features(con, names, cutoffs["validation"], share=evaluation, **labelled)
    parts = [features(con, names, cut, share=training, **labelled) for cut in cutoffs["train"]]
    train_x = np.concatenate([part.select(feature_names) for part in parts])
    train_y = np.concatenate([part.labels for part in parts])
    features_s = time.perf_counter() - started
    started = time.perf_counter()
    params = lightgbm_params(seed)
    train_set = lgb.Dataset(train_x, label=train_y, params=params)
    if rounds:
        booster = lgb.train(params, train_set, num_boost_round=rounds)
    else:
        validation_set = lgb.Dataset(validation.select(feature_names), label=validation.labels, reference=train_set)
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=model.MAX_ROUNDS,
            valid_sets=[validation_set],
            callbacks=[lgb.early_stopping(model.EARLY_STOPPING_ROUNDS, verbose=False)],
        )
    fit_s = time.perf_counter() - started
    predicted = booster.predict(test.select(feature_names), num_threads=THREADS)
    test_auc = float(quality.auc(test.labels, predicted)) if np.unique(test.labels).shape[0] == 2 else float("nan")
    labelled_parts = {"test": test, "validation": validation} | {f"train {k}": p for k, p in enumerate(parts)}
    return Training(
        booster=booster,
        features_s=features_s,
        fit_s=fit_s,
        rounds=int(booster.best_iteration or booster.current_iteration()),
        early_stopping=not rounds,
        rows=int(train_y.shape[0]),
        positives=int(train_y.sum()),
        test_auc=test_auc,
        cutoff_seconds={name: part.seconds for name, part in labelled_parts.items()},
    )


@dataclass
class Scoring:
    """The baseline's scoring at one cutoff: features, then ``Booster.predict`` (nothing written)."""

    rows: int
    features_s: float
    predict_s: float
    feature_seconds: dict[str, float]

    @property
    def seconds(self) -> float:
        return self.features_s + self.predict_s


def score(
    con: duckdb.DuckDBPyConnection, names: list[str], t: int, booster: lgb.Booster, feature_names: list[str]
) -> Scoring:
    started = time.perf_counter()
    rows = features(con, names, t)
    x = rows.select(feature_names)
    features_s = time.perf_counter() - started
    started = time.perf_counter()
    booster.predict(x, num_threads=THREADS)
    predict_s = time.perf_counter() - started
    return Scoring(int(x.shape[0]), features_s, predict_s, rows.seconds)
