"""Training, scoring, explaining and backtesting a prediction over the engine's point-in-time rows.

Cutoffs are day ends counted back from the evaluation time `at` by the horizon: the newest whose
horizon has fully passed tests, the one before it validates (picks the better candidate and
calibrates it), and up to six before that train. Every row of a cutoff is labelled by what happened
in the horizon after it. The model is published only past the gates (enough positives and
negatives, 3x the horizon of history, a test AUC of 0.65); otherwise the prediction says why not.
Scores go onto profiles as traits through the engine; each scoring keeps a fixed sample of what it
said, to be backtested once its horizon has passed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cdp_server import _core
from cdp_server.predictions import charts, model, quality
from cdp_server.predictions.definitions import DAY_MS, Definition

log = logging.getLogger(__name__)

# The event names a model reads: the goal's, and the most widespread others.
TOP_NAMES = 10
# Engage's own events say what Tributary decided, not what the person did.
_DERIVED_NAMES = {"Audience Entered", "Audience Exited"}
TRAINING_CUTOFFS = 6
# A training cutoff needs this much history before it to describe anyone.
_MIN_HISTORY_MS = 28 * DAY_MS
MIN_POSITIVES = MIN_NEGATIVES = 100
MIN_HISTORY_HORIZONS = 3
MIN_TEST_AUC = 0.65
# A single column that alone ranks the training labels this well is the label in disguise.
TARGET_LEAK_AUC = 0.99
# ... ranking each row by the positive rate of its value's bin: up to this many quantile bins of the
# known values, and the missing values apart (`alone_auc`).
TARGET_LEAK_BINS = 32
# Isotonic calibration holds its end values outside the scores it was fitted on: past this share of
# the scored population out there, Platt's sigmoid (which extrapolates) calibrates instead.
MAX_OUTSIDE_CALIBRATION = 0.05
# A backtest's realized AUC this far below the validation AUC is flagged.
BACKTEST_DROP = 0.05
RETRAIN_EVERY_MS = 7 * DAY_MS
# A training reads the rows of a fixed sample of about this many profiles (by profile id, the same
# at every cutoff) at each training cutoff, and of EVALUATION_PROFILES at the validation and test
# cutoffs: past a few hundred thousand rows a model barely changes, while time and memory grow.
TRAINING_PROFILES = 100_000
EVALUATION_PROFILES = 250_000
# The target-leak check ranks the training labels by each column on about this many of the rows.
LEAK_CHECK_ROWS = 200_000
# Each scoring keeps this many profiles' scores for its backtest.
SNAPSHOT_ROWS = 50_000
ID_DTYPE = np.dtype([("low", "<u8"), ("high", "<u8")])


@dataclass
class Rows:
    columns: list[str]
    ids: np.ndarray  # ID_DTYPE
    features: np.ndarray  # float32 (rows, columns)
    labels: np.ndarray  # float64, empty without a label
    leaky: list[str]
    values: bytes  # the features as the engine gave them (row-major little-endian f32)


def day_end(ms: int) -> int:
    """The last millisecond of the last whole UTC day ending at or before `ms`."""
    return ((ms + 1) // DAY_MS) * DAY_MS - 1


def fetch_rows(
    engine: _core.Engine,
    names: list[str],
    cutoff_ms: int,
    *,
    traits: list[str] | None = None,
    label: dict[str, Any] | None = None,
    population: str | None = None,
    profiles: list[str] | None = None,
    audit: bool = False,
    probe_leak: bool = False,
    max_profiles: int | None = None,
) -> Rows:
    request = {
        "max_profiles": max_profiles,
        "names": names,
        "traits": traits or [],
        "cutoff_ms": cutoff_ms,
        "label": label,
        "population": population,
        "profiles": profiles,
        "audit": audit,
        "probe_leak": probe_leak,
    }
    columns, ids, values, labels, leaky, _ = engine.prediction_rows(json.dumps(request).encode())
    features = np.frombuffer(values, dtype="<f4").reshape(-1, len(columns))
    ids_array = np.frombuffer(ids, dtype=ID_DTYPE)
    return Rows(columns, ids_array, features, np.frombuffer(labels, dtype="<f8"), leaky, values)


def alone_auc(values: np.ndarray, labels: np.ndarray) -> float:
    """How well one column alone ranks 0/1 labels, whatever its shape: each row is scored by the share
    of positives among the rows whose value falls in the same bin (TARGET_LEAK_BINS quantile bins of
    the known values; the missing values one more). A recency column that holds the positives at one
    value, between the missing ("never") and the long ago, then ranks them as well as a count holding
    them at its top; the AUC of the raw values sees only the latter."""
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values)
    bins = np.zeros(values.shape[0], dtype=np.int64)
    if known.any():
        inner = np.linspace(0.0, 1.0, TARGET_LEAK_BINS + 1)[1:-1]
        edges = np.unique(np.quantile(values[known], inner))
        bins[known] = 1 + np.searchsorted(edges, values[known], side="left")
    rate = np.bincount(bins, weights=labels) / np.maximum(np.bincount(bins), 1)
    return float(quality.auc(labels, rate[bins]))


# The niceness of a background refresh's thread: on a machine that also ingests, it takes the CPU
# ingest leaves (Linux's fair scheduler weighs nice 10 at about a tenth of nice 0).
BACKGROUND_NICENESS = 10


def run_in_background() -> None:
    """Lowers the calling thread's CPU priority (Linux: niceness is per thread), so that the
    refresh it runs (features in the engine on this thread, the model in Python) yields to ingest."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except OSError as exc:  # not permitted here: the refresh runs at normal priority
        log.warning("predictions: could not lower the refresh thread's priority: %s", exc)


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


class NotReady(Exception):
    """The prediction cannot be published yet; the message says why."""


class Predictions:
    """The predictions of one engine: definitions and their models, in the engine's records."""

    def __init__(self, engine: _core.Engine, *, probe_leak: bool = False) -> None:
        self._engine = engine
        # Tests of the leak guard add a column that reads past the cutoff on purpose.
        self._probe_leak = probe_leak
        self._models: dict[str, tuple[int, model.Model]] = {}
        # The seconds of each stage of the latest training and scoring (for logs and the benchmark).
        self.timings: dict[str, dict[str, float]] = {}

    # Records: everything of prediction KEY lives under "KEY/".
    def get(self, key: str) -> Definition | None:
        found = self._engine.prediction_records(f"{key}/definition")
        return Definition.from_bytes(found[0][1]) if found and found[0][0] == f"{key}/definition" else None

    def all(self) -> list[Definition]:
        return [Definition.from_bytes(v) for k, v in self._engine.prediction_records("") if k.endswith("/definition")]

    def save(self, definition: Definition) -> None:
        self._engine.put_prediction_records([(f"{definition.key}/definition", definition.to_bytes())])

    def delete(self, key: str) -> int:
        return self._engine.delete_prediction_records(f"{key}/")

    def records_of(self, key: str) -> list[tuple[str, bytes]]:
        return self._engine.prediction_records(f"{key}/")

    def record(self, key: str, name: str) -> bytes | None:
        found = self._engine.prediction_records(f"{key}/{name}")
        return next((value for k, value in found if k == f"{key}/{name}"), None)

    def published(self, key: str) -> model.Model | None:
        data = self.record(key, "model")
        return model.Model.from_bytes(data) if data else None

    def report(self, key: str) -> dict[str, Any] | None:
        data = self.record(key, "report")
        return json.loads(data) if data else None

    def names(self, definition: Definition) -> list[str]:
        """The event names the model reads: the goals', then the most widespread others."""
        names = list(dict.fromkeys(definition.goal_names()))
        for name, _reach in self._engine.event_name_reach():
            if len(names) >= TOP_NAMES + len(definition.goals):
                break
            if name not in names and name not in _DERIVED_NAMES:
                names.append(name)
        return names

    def refresh(self, key: str, at_ms: int, *, retrain: bool | None = None) -> dict[str, Any]:
        """Retrains when asked, when there is no model or when it is a week old, then scores."""
        definition = self.get(key)
        if definition is None:
            raise KeyError(key)
        outcome: dict[str, Any] = {"key": key}
        current = self.published(key)
        if retrain or (retrain is None and (current is None or at_ms - definition.trained_ms >= RETRAIN_EVERY_MS)):
            outcome["trained"] = True
            try:
                current = self.train(definition, at_ms)
            except NotReady as exc:
                if current is None:
                    definition.state, definition.reason = "not_ready", str(exc)
                else:  # the published model goes on scoring
                    definition.reason = f"the retraining at {at_ms} was not published: {exc}"
                definition.trained_ms = at_ms
                self.save(definition)
                log.info("prediction %s not ready: %s", key, exc)
        if current is not None:
            outcome["scores"] = self.score(definition, current, at_ms)
        outcome["backtests"] = self.backtest_due(definition, at_ms)
        outcome["state"], outcome["reason"] = definition.state, definition.reason
        return outcome

    def train(self, definition: Definition, at_ms: int) -> model.Model:
        """Trains, measures and, past the gates, publishes a model; raises NotReady otherwise (the
        report of what was measured is kept either way)."""
        names = self.names(definition)
        horizon = definition.horizon_ms
        test_cut = day_end(at_ms - horizon)
        validation_cut = test_cut - horizon
        label = definition.label()

        def rows(cutoff: int, profiles: int, audit: bool = False) -> Rows:
            return fetch_rows(
                self._engine,
                names,
                cutoff,
                traits=definition.trait_features,
                label=label,
                population=definition.population,
                audit=audit,
                probe_leak=self._probe_leak,
                max_profiles=profiles,
            )

        report: dict[str, Any] = {
            "key": definition.key,
            "at_ms": at_ms,
            "names": names,
            "cutoffs": {"test": test_cut, "validation": validation_cut, "train": []},
        }
        charted = False
        # Seconds per stage (rows: the engine's features; leak checks; fitting both candidates and
        # calibrating; charts), kept apart from the report, which the same log reproduces exactly.
        timings = self.timings["train"] = {"rows_s": 0.0, "leak_check_s": 0.0, "fit_s": 0.0, "charts_s": 0.0}
        started = time.perf_counter()
        try:
            test = rows(test_cut, EVALUATION_PROFILES, audit=True)
            history_ms = self._history_ms(test, test_cut, at_ms)
            report["history_days"] = round(history_ms / DAY_MS, 1)
            if history_ms < MIN_HISTORY_HORIZONS * horizon:
                raise NotReady(
                    f"needs {MIN_HISTORY_HORIZONS}x the horizon of history"
                    f" ({MIN_HISTORY_HORIZONS * definition.horizon_days} days);"
                    f" the log holds {history_ms / DAY_MS:.0f} days"
                )
            start = at_ms - history_ms
            train_cuts = [
                validation_cut - k * horizon
                for k in range(1, TRAINING_CUTOFFS + 1)
                if validation_cut - k * horizon - start >= _MIN_HISTORY_MS
            ]
            report["cutoffs"]["train"] = train_cuts
            if not train_cuts:
                raise NotReady("no training cutoff has history before it: needs more history")
            validation = rows(validation_cut, EVALUATION_PROFILES)
            parts = [rows(cut, TRAINING_PROFILES) for cut in train_cuts]
            train_x = np.concatenate([p.features for p in parts])
            train_y = np.concatenate([p.labels for p in parts])
            timings["rows_s"] += _lap(started)
            started = time.perf_counter()
            refused = self._refused_columns(test, train_x, train_y, definition)
            timings["leak_check_s"] = _lap(started)
            report["refused_columns"] = refused
            keep = [i for i, c in enumerate(test.columns) if c not in refused]
            columns = [test.columns[i] for i in keep]
            positives = int(np.sum(train_y > 0))
            negatives = int(train_y.shape[0] - positives)
            report["training_examples"] = {
                "rows": int(train_y.shape[0]),
                "positives": positives,
                "negatives": negatives,
            }
            if positives < MIN_POSITIVES or negatives < MIN_NEGATIVES:
                raise NotReady(
                    f"needs {MIN_POSITIVES} positive and {MIN_NEGATIVES} negative training examples;"
                    f" has {positives} and {negatives}"
                )
            if validation.features.shape[0] == 0 or np.unique(validation.labels > 0).shape[0] < 2:
                raise NotReady("the validation cutoff has no rows of one of the outcomes")
            splits = {
                "train": model.Split(train_x[:, keep], train_y),
                "validation": model.Split(validation.features[:, keep], validation.labels),
                "test": model.Split(test.features[:, keep], test.labels),
            }
            # The rows `score` will write, read as it reads them (no probe column): by name, not by the
            # test rows' positions.
            started = time.perf_counter()
            scoring = fetch_rows(
                self._engine,
                names,
                at_ms,
                traits=definition.trait_features,
                population=definition.population,
                max_profiles=EVALUATION_PROFILES,
            )
            timings["rows_s"] += _lap(started)
            started = time.perf_counter()
            at = {c: i for i, c in enumerate(scoring.columns)}
            training = self._fit(definition, columns, splits, scoring.features[:, [at[c] for c in columns]])
            report.update(training.report)
            trained = training.model
            predictions = trained.predict(splits["test"].features)
            test_auc = self._test_auc(definition, splits["test"].labels, predictions)
            # Strict JSON: an AUC undefined for one class is null, not NaN.
            report["test_auc"] = None if np.isnan(test_auc) else test_auc
            timings["fit_s"] = _lap(started)
            started = time.perf_counter()
            self._charts(definition, splits["test"].labels, predictions)
            timings["charts_s"] = _lap(started)
            charted = True
            if not test_auc >= MIN_TEST_AUC:
                raise NotReady(f"the test AUC {test_auc:.3f} is below {MIN_TEST_AUC}")
        except NotReady as exc:
            report["published"], report["reason"] = False, str(exc)
            if not charted:
                # The charts of an earlier training do not belong beside this report.
                self._engine.put_prediction_records(
                    [(f"{definition.key}/chart/gains", None), (f"{definition.key}/chart/calibration", None)]
                )
            self._put(definition.key, "report", json.dumps(report, sort_keys=True).encode())
            raise
        report["published"] = True
        definition.version += 1
        definition.state, definition.reason, definition.trained_ms = "ready", "", at_ms
        report["version"] = definition.version
        inputs = {"names": names, "traits": definition.trait_features}
        self._engine.put_prediction_records(
            [
                (f"{definition.key}/model", trained.to_bytes()),
                (f"{definition.key}/inputs", json.dumps(inputs, sort_keys=True).encode()),
                (f"{definition.key}/report", json.dumps(report, sort_keys=True).encode()),
                (f"{definition.key}/definition", definition.to_bytes()),
            ]
        )
        return trained

    def _fit(
        self, definition: Definition, columns: list[str], splits: dict[str, model.Split], scoring: np.ndarray
    ) -> model.Training:
        kind = "regression" if definition.ltv else "classification"
        fit = {"kind": kind, "feature_names": columns, "seed": definition.seed, **splits}
        training = model.train(**fit, calibration="auto")  # type: ignore[arg-type]
        if training.model.outside_calibration(scoring) > MAX_OUTSIDE_CALIBRATION:
            training = model.train(**fit, calibration="sigmoid")  # type: ignore[arg-type]
            training.report["calibration"]["chosen_because"] = (
                f"over {MAX_OUTSIDE_CALIBRATION:.0%} of the profiles to score lie outside the isotonic range"
            )
        return training

    def _history_ms(self, test: Rows, test_cut: int, at_ms: int) -> int:
        if test.features.shape[0] == 0:
            return 0
        tenure = test.features[:, test.columns.index("tenure_days")]
        return int(np.nanmax(tenure) * DAY_MS) + (at_ms - test_cut)

    def _refused_columns(
        self, test: Rows, train_x: np.ndarray, train_y: np.ndarray, definition: Definition
    ) -> list[str]:
        """The leak guard's columns (they read past the cutoff), and any column that alone predicts
        the training labels almost perfectly (the label itself, leaked)."""
        refused = list(test.leaky)
        if definition.ltv:
            train_y = (train_y > 0).astype(np.float64)
        if train_y.shape[0] > LEAK_CHECK_ROWS:
            every = -(-train_y.shape[0] // LEAK_CHECK_ROWS)
            train_x, train_y = train_x[::every], train_y[::every]
        if np.unique(train_y).shape[0] == 2:
            for i, column in enumerate(test.columns):
                if column not in refused and alone_auc(train_x[:, i], train_y) >= TARGET_LEAK_AUC:
                    refused.append(column)
        if refused:
            log.warning("prediction %s: columns refused as leaks: %s", definition.key, refused)
        return refused

    @staticmethod
    def _test_auc(definition: Definition, labels: np.ndarray, predictions: np.ndarray) -> float:
        outcome = (labels > 0).astype(np.float64)
        if np.unique(outcome).shape[0] < 2:
            return float("nan")
        return float(quality.auc(outcome, predictions))

    def _charts(self, definition: Definition, labels: np.ndarray, predictions: np.ndarray) -> None:
        outcome = (labels > 0).astype(np.float64)
        records: list[tuple[str, bytes | None]] = [
            (f"{definition.key}/chart/gains", charts.gains_png(quality.gains_curve(outcome, predictions)))
        ]
        if not definition.ltv:
            bins = quality.calibration_bins(labels, predictions)
            records.append((f"{definition.key}/chart/calibration", charts.calibration_png(bins)))
        self._engine.put_prediction_records(records)

    def _put(self, key: str, name: str, value: bytes) -> None:
        self._engine.put_prediction_records([(f"{key}/{name}", value)])

    def score(self, definition: Definition, trained: model.Model, at_ms: int) -> dict[str, int]:
        """Scores every profile the model reads (in the population) and writes the changed traits;
        says how many (the seconds of each stage go to `timings["score"]`)."""
        timings = self.timings["score"] = {}
        started = time.perf_counter()
        names, traits = self.inputs(definition.key)
        rows = fetch_rows(self._engine, names, at_ms, traits=traits, population=definition.population)
        timings["features_s"] = _lap(started)
        started = time.perf_counter()
        predicted = trained.calibrated(trained.raw_rows(rows.values, rows.columns))
        percentiles = np.floor(quality.percentiles(predicted) * 100) / 100 if predicted.size else predicted
        deciles = quality.deciles(percentiles) if predicted.size else predicted
        first, percentile, decile = definition.trait_names()
        rounded = np.round(predicted, 2 if definition.ltv else 4)
        timings["predict_s"] = _lap(started)
        started = time.perf_counter()
        written, unchanged, gone = self._engine.write_prediction_scores(
            definition.key,
            at_ms,
            rows.ids.tobytes(),
            [
                (first, rounded.astype("<f8").tobytes(), False),
                (percentile, percentiles.astype("<f8").tobytes(), False),
                (decile, np.asarray(deciles, dtype="<f8").tobytes(), True),
            ],
        )
        timings["write_s"] = _lap(started)
        started = time.perf_counter()
        definition.scored_ms = at_ms
        self.save(definition)
        self._keep_snapshot(definition, rows.ids, predicted, at_ms)
        timings["snapshot_s"] = _lap(started)
        return {
            "profiles": int(rows.ids.shape[0]),
            "written": written,
            "unchanged": unchanged,
            "gone": gone,
        }

    def _cached_model(self, definition: Definition) -> model.Model:
        """The published model, parsed once per version (explanations ask for it per profile)."""
        cached = self._models.get(definition.key)
        if cached is None or cached[0] != definition.version:
            trained = self.published(definition.key)
            if trained is None:
                raise NotReady(definition.reason or "no model yet")
            cached = (definition.version, trained)
            self._models[definition.key] = cached
        return cached[1]

    def inputs(self, key: str) -> tuple[list[str], list[str]]:
        """The event names and traits the published model's rows are computed from."""
        data = self.record(key, "inputs")
        if data is None:
            raise NotReady("no model yet")
        found = json.loads(data)
        return list(found["names"]), list(found["traits"])

    def _keep_snapshot(self, definition: Definition, ids: np.ndarray, predicted: np.ndarray, at_ms: int) -> None:
        """Keeps what this scoring said, for its backtest once the horizon has passed: up to
        SNAPSHOT_ROWS profiles (those with the smallest ids: a fixed, unbiased sample, since ids are
        random), with the model version and its validation AUC."""
        if ids.shape[0] > SNAPSHOT_ROWS:
            kept = np.sort(np.argsort(ids["low"], kind="stable")[:SNAPSHOT_ROWS])
            ids, predicted = ids[kept], predicted[kept]
        report = self.report(definition.key) or {}
        winner = report.get("candidates", {}).get(report.get("winner", ""), {})
        validation_auc = winner.get("validation", {}).get("auc")
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=ids.view("<u8"),
            predicted=predicted,
            at_ms=np.array([at_ms]),
            version=np.array([definition.version]),
            validation_auc=np.array([np.nan if validation_auc is None else validation_auc]),
        )
        self._put(definition.key, f"snapshot/{at_ms:016d}", buffer.getvalue())

    @staticmethod
    def _columns(rows: Rows, trained: model.Model) -> np.ndarray:
        """The model's columns out of the engine's rows (refused columns were dropped at training)."""
        index = {c: i for i, c in enumerate(rows.columns)}
        return rows.features[:, [index[c] for c in trained.feature_names]]

    def explain(self, key: str, profile: str, at_ms: int, top: int = 5) -> dict[str, Any]:
        """The score of one profile now and the `top` signed contributions behind it."""
        definition = self.get(key)
        if definition is None:
            raise KeyError(key)
        trained = self._cached_model(definition)
        # Only a profile the prediction scores: one of the population, if it has one.
        names, traits = self.inputs(key)
        population = definition.population
        rows = fetch_rows(self._engine, names, at_ms, traits=traits, profiles=[profile], population=population)
        if rows.ids.shape[0] == 0:
            outside = f"is not in the population {population!r} or " if population else ""
            raise LookupError(f"profile {profile} {outside}has none of the events this prediction reads")
        features = self._columns(rows, trained)
        explanation = trained.explain(features, top=top)
        raw = float(trained.raw(features)[0])
        return {
            "key": key,
            "profile": profile,
            "score": float(trained.predict(features)[0]),
            "raw_score": raw,
            "expected_value": float(explanation.expected_value),
            "contributions": [
                {
                    "feature": trained.feature_names[int(f)],
                    "value": None if np.isnan(features[0, int(f)]) else float(features[0, int(f)]),
                    "contribution": float(c),
                }
                for f, c in zip(explanation.features[0], explanation.contributions[0], strict=True)
            ],
        }

    def backtest_due(self, definition: Definition, at_ms: int) -> list[dict[str, Any]]:
        """Backtests every kept snapshot whose horizon has passed and that has none yet: its scores
        against what happened, flagged when the realized AUC falls well below the validation AUC."""
        done = []
        for name, data in self._engine.prediction_records(f"{definition.key}/snapshot/"):
            scored = name.rsplit("/", 1)[1]
            if self.record(definition.key, f"backtest/{scored}") is not None:
                continue
            with np.load(io.BytesIO(data), allow_pickle=False) as snapshot:
                ids, predicted, scored_ms = snapshot["ids"], snapshot["predicted"], int(snapshot["at_ms"][0])
                version = int(snapshot["version"][0])
                validation_auc = float(snapshot["validation_auc"][0])
            if scored_ms + definition.horizon_ms > at_ms:
                continue
            ids = ids.view(ID_DTYPE).reshape(-1)
            names, traits = self.inputs(definition.key)
            realized = fetch_rows(
                self._engine,
                names,
                scored_ms,
                traits=traits,
                label=definition.label(),
                population=definition.population,
            )
            _, mine, theirs = np.intersect1d(ids, realized.ids, return_indices=True)
            outcome = (realized.labels[theirs] > 0).astype(np.float64)
            realized_auc = (
                float(quality.auc(outcome, predicted[mine])) if np.unique(outcome).shape[0] == 2 else float("nan")
            )
            result = {
                "version": version,
                "scored_ms": scored_ms,
                "rows": int(mine.shape[0]),
                "realized_auc": None if np.isnan(realized_auc) else realized_auc,
                "validation_auc": None if np.isnan(validation_auc) else validation_auc,
                "flagged": bool(realized_auc < validation_auc - BACKTEST_DROP),
            }
            self._put(definition.key, f"backtest/{scored}", json.dumps(result).encode())
            done.append(result)
        return done
