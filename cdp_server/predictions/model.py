"""Training a prediction: two candidates, the better one calibrated, explained and serialised.

The candidates are gradient-boosted trees (LightGBM), which find the non-linear shapes of behavioural
features (recency curves, frequency thresholds) and take missing values as they come, and a linear baseline
(logistic or ridge regression on log-scaled, standardised features with missing indicators), which is
hard to beat when the truth is close to linear and gives a floor the trees must clear. The one that does
better on the validation split wins; a classifier's raw score is then calibrated on that same split
(isotonic with enough rows, Platt's sigmoid below), so a score of 0.3 means about 30% of such people
convert. Both candidates' metrics are reported, on validation and on test, before and after calibration.

Everything is deterministic for a given input and seed (LightGBM's deterministic mode on a fixed thread
count, closed-form or L-BFGS solvers), so a model's bytes and scores reproduce exactly. A model is stored
as JSON holding LightGBM's own text format or the linear coefficients; never pickle, so loading a model
runs no code.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from cdp_server import _core
from cdp_server.predictions import quality

Kind = Literal["classification", "regression"]
# "auto": isotonic from ISOTONIC_MIN_ROWS validation rows, Platt's sigmoid below.
Calibration = Literal["auto", "isotonic", "sigmoid"]
FORMAT = "tributary.prediction-model"
FORMAT_VERSION = 1
# Isotonic calibration needs enough rows per step to not overfit; Platt's two parameters do not.
ISOTONIC_MIN_ROWS = 1_000
THREADS = 2
# The baseline's solvers run on one BLAS thread: their products (rows x a few hundred columns) are too
# small to gain from more, and OpenBLAS's threads spin while they wait, so on a busy machine (the engine's
# threads, other processes) a multi-threaded fit took 15x longer. One thread also sums in one order
# whatever the machine's core count.
BLAS_THREADS = 1
MAX_ROUNDS = 400
EARLY_STOPPING_ROUNDS = 40
# Tabular CRM data: few, strong, noisy features. Small trees with large leaves and L2 keep the model
# from memorising single customers; feature_fraction decorrelates the trees.
LIGHTGBM_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "max_bin": 255,
}
LINEAR_MAX_ROWS = 150_000
LINEAR_C = 1.0  # logistic regression's inverse L2 strength, on standardised features
RIDGE_ALPHA = 1.0


@dataclass(frozen=True)
class Split:
    """One split of a data set: float32 features (rows x features, NaN = missing) and float64 labels."""

    features: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Explanation:
    """Why each row scored as it did, in raw-score space (log-odds for a classifier).

    Attributes:
        features: int32 [rows, top]: the indices of each row's `top` largest-|contribution| features.
        contributions: float64 [rows, top]: their signed contributions, in the same order.
        expected_value: The score of an average row; the contributions are deviations from it.
        total: float64 [rows]: the sum of all features' contributions, so expected_value + total == raw.
    """

    features: np.ndarray
    contributions: np.ndarray
    expected_value: float
    total: np.ndarray


def _matrix(features: Any, columns: int) -> np.ndarray:
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != columns:
        raise ValueError(f"features must be a (rows, {columns}) matrix, got shape {x.shape}")
    return x


def _log_features(x: np.ndarray) -> np.ndarray:
    """sign(x) * log1p(|x|), float64: counts, amounts and day spans become roughly additive."""
    x64 = x.astype(np.float64)
    return np.sign(x64) * np.log1p(np.abs(x64))


class _Estimator(Protocol):
    name: str

    def raw(self, x: np.ndarray) -> np.ndarray: ...

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]: ...

    def importance(self, names: list[str]) -> dict[str, float]: ...

    def to_json(self) -> dict[str, Any]: ...


class _Trees:
    """A LightGBM booster, kept only as its text model (what is saved is exactly what predicts)."""

    name = "lightgbm"

    def __init__(self, model_text: str) -> None:
        self.model_text = model_text
        self.booster = lgb.Booster(model_str=model_text)

    def raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=THREADS), dtype=np.float64)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        # LightGBM's TreeSHAP: one column per feature, then the expected value (the same on every row).
        if x.shape[0] == 0:
            _, expected = self.contributions(np.full((1, x.shape[1]), np.nan, dtype=np.float32))
            return np.zeros((0, x.shape[1])), expected
        shap = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=THREADS), dtype=np.float64)
        return shap[:, :-1], float(shap[0, -1])

    def importance(self, names: list[str]) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(names, gain, strict=True)}

    def to_json(self) -> dict[str, Any]:
        return {"type": self.name, "model": self.model_text}


class _Linear:
    """A linear model over log-scaled, imputed (0 + missing indicator), standardised features.

    Its contributions are coefficient x standardised value (the feature's and its indicator's), so they
    are deviations from the training mean and the intercept is the expected value: exact, like SHAP.
    """

    def __init__(
        self,
        name: str,
        indicators: list[int],
        mean: np.ndarray,
        scale: np.ndarray,
        coefficients: np.ndarray,
        intercept: float,
    ) -> None:
        self.name = name
        self.indicators = indicators
        self.mean = mean
        self.scale = scale
        self.coefficients = coefficients
        self.intercept = intercept

    @staticmethod
    def design_raw(x: np.ndarray, indicators: list[int]) -> np.ndarray:
        values = np.nan_to_num(_log_features(x), nan=0.0)
        missing = np.isnan(x[:, indicators]).astype(np.float64)
        design: np.ndarray = np.hstack([values, missing])
        return design

    def design(self, x: np.ndarray) -> np.ndarray:
        standardised: np.ndarray = (self.design_raw(x, self.indicators) - self.mean) / self.scale
        return standardised

    def raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.design(x) @ self.coefficients + self.intercept, dtype=np.float64)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        terms = self.design(x) * self.coefficients
        features = x.shape[1]
        per_feature = terms[:, :features].copy()
        for column, feature in enumerate(self.indicators):
            per_feature[:, feature] += terms[:, features + column]
        return per_feature, self.intercept

    def importance(self, names: list[str]) -> dict[str, float]:
        result = {name: abs(float(c)) for name, c in zip(names, self.coefficients[: len(names)], strict=True)}
        for column, feature in enumerate(self.indicators):
            result[f"{names[feature]}:missing"] = abs(float(self.coefficients[len(names) + column]))
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "indicators": self.indicators,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coefficients": self.coefficients.tolist(),
            "intercept": self.intercept,
        }


@dataclass(frozen=True)
class _Calibrator:
    """Raw score -> probability: isotonic (a monotone piecewise-linear map through `points`) or
    Platt's sigmoid(a * raw + b); for a regression, a scale (a * raw) that makes the validation
    cutoff's predicted total its actual total."""

    method: Literal["isotonic", "sigmoid", "scale"]
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            # np.interp holds the end values outside the fitted range (out_of_bounds="clip").
            return np.asarray(np.interp(raw, self.x, self.y), dtype=np.float64)
        if self.method == "scale":
            return np.asarray(self.a * raw, dtype=np.float64)
        return np.asarray(expit(self.a * raw + self.b), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        if self.method == "scale":
            return {"method": "scale", "a": self.a}
        return {"method": "sigmoid", "a": self.a, "b": self.b}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> _Calibrator:
        if data["method"] == "isotonic":
            return _Calibrator("isotonic", x=tuple(map(float, data["x"])), y=tuple(map(float, data["y"])))
        if data["method"] == "scale":
            return _Calibrator("scale", a=float(data["a"]))
        if data["method"] == "sigmoid":
            return _Calibrator("sigmoid", a=float(data["a"]), b=float(data["b"]))
        raise ValueError(f"unknown calibration method {data['method']!r}")


class Model:
    """A trained prediction: raw score, (calibrated) prediction, explanations and its bytes."""

    def __init__(
        self, kind: Kind, feature_names: list[str], estimator: _Estimator, calibrator: _Calibrator | None
    ) -> None:
        self.kind = kind
        self.feature_names = list(feature_names)
        self.estimator = estimator
        self.calibrator = calibrator

    @property
    def estimator_name(self) -> str:
        return self.estimator.name

    @property
    def calibration(self) -> str | None:
        return self.calibrator.method if self.calibrator else None

    def raw(self, features: Any) -> np.ndarray:
        """The uncalibrated score: log-odds for a classifier, the predicted value for a regression."""
        return self.estimator.raw(_matrix(features, len(self.feature_names)))

    def raw_rows(self, values: bytes, columns: list[str]) -> np.ndarray:
        """The raw scores of the engine's feature rows as they came (`values`: row-major
        little-endian f32, `columns` wide), the model's columns picked by name. Trees are walked in
        the engine (`_core.tree_scores`, LightGBM's scores exactly), without a matrix in Python."""
        index = {c: i for i, c in enumerate(columns)}
        at = [index[c] for c in self.feature_names]
        if isinstance(self.estimator, _Trees):
            scores = _core.tree_scores(self.estimator.model_text, values, len(columns), at)
            return np.frombuffer(scores, dtype="<f8")
        return self.raw(np.frombuffer(values, dtype="<f4").reshape(-1, len(columns))[:, at])

    def predict(self, features: Any) -> np.ndarray:
        """The calibrated probability (classification) or the predicted value (regression), float64."""
        return self.calibrated(self.raw(features))

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """What raw scores predict: calibrated probabilities, or values."""
        if self.kind == "regression":
            return self.calibrator(raw) if self.calibrator else raw
        return self.calibrator(raw) if self.calibrator else np.asarray(expit(raw), dtype=np.float64)

    def outside_calibration(self, features: Any) -> float:
        """The share of rows whose raw score lies outside the range an isotonic calibrator was fitted
        on (where it holds its end values); 0 for a sigmoid or no calibrator."""
        if self.calibrator is None or self.calibrator.method != "isotonic":
            return 0.0
        return _outside(self.raw(features), np.asarray(self.calibrator.x))

    def explain(self, features: Any, top: int = 5) -> Explanation:
        """Each row's `top` strongest contributions (by |value|, ties by feature index) to its raw score."""
        x = _matrix(features, len(self.feature_names))
        contributions, expected = self.estimator.contributions(x)
        top = max(0, min(top, x.shape[1]))
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :top]
        return Explanation(
            features=order.astype(np.int32),
            contributions=np.take_along_axis(contributions, order, axis=1).astype(np.float64),
            expected_value=expected,
            total=contributions.sum(axis=1),
        )

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, exact float repr): equal models give equal bytes."""
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "feature_names": self.feature_names,
            "estimator": self.estimator.to_json(),
            "calibrator": self.calibrator.to_json() if self.calibrator else None,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @staticmethod
    def from_bytes(data: bytes) -> Model:
        document = json.loads(data)
        if document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} version {FORMAT_VERSION} document")
        kind = document["kind"]
        if kind not in ("classification", "regression"):
            raise ValueError(f"unknown model kind {kind!r}")
        spec = document["estimator"]
        estimator: _Estimator
        if spec["type"] == "lightgbm":
            estimator = _Trees(spec["model"])
        elif spec["type"] in ("logistic", "ridge"):
            estimator = _Linear(
                spec["type"],
                [int(i) for i in spec["indicators"]],
                np.asarray(spec["mean"], dtype=np.float64),
                np.asarray(spec["scale"], dtype=np.float64),
                np.asarray(spec["coefficients"], dtype=np.float64),
                float(spec["intercept"]),
            )
        else:
            raise ValueError(f"unknown estimator {spec['type']!r}")
        calibrator = _Calibrator.from_json(document["calibrator"]) if document["calibrator"] else None
        return Model(kind, document["feature_names"], estimator, calibrator)


@dataclass(frozen=True)
class Training:
    """The outcome of `train`: the calibrated winner and a JSON-serialisable report of both candidates."""

    model: Model
    winner: str
    report: dict[str, Any]


def _fit_trees(kind: Kind, train: Split, validation: Split, seed: int) -> tuple[_Trees, dict[str, Any]]:
    params: dict[str, Any] = {
        **LIGHTGBM_PARAMS,
        "objective": "binary" if kind == "classification" else "regression",
        "metric": "binary_logloss" if kind == "classification" else "l2",
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": THREADS,
        "seed": seed,
        "verbosity": -1,
    }
    # LightGBM's own names are positional: any feature name (spaces, quotes) stays ours.
    names = [f"f{i}" for i in range(train.features.shape[1])]
    train_set = lgb.Dataset(train.features, label=train.labels, feature_name=names, params=params)
    validation_set = lgb.Dataset(validation.features, label=validation.labels, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[validation_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
    )
    rounds = int(booster.best_iteration) or booster.current_iteration()
    trees = _Trees(booster.model_to_string(num_iteration=rounds))
    return trees, {
        "params": {**params, "max_rounds": MAX_ROUNDS, "early_stopping_rounds": EARLY_STOPPING_ROUNDS},
        "rounds": rounds,
    }


def _fit_linear(kind: Kind, train: Split, seed: int) -> tuple[_Linear, dict[str, Any]]:
    # A linear model of a few hundred coefficients is settled by LINEAR_MAX_ROWS rows (every k-th:
    # the training rows come cutoff by cutoff, so all cutoffs stay in); more costs minutes and
    # gigabytes (the design matrix is float64, twice the width with its indicators).
    every = -(-train.features.shape[0] // LINEAR_MAX_ROWS)
    x, labels = train.features[::every], train.labels[::every]
    indicators = [int(j) for j in np.flatnonzero(np.isnan(x).any(axis=0))]
    design = _Linear.design_raw(x, indicators)
    mean = design.mean(axis=0)
    scale = design.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (design - mean) / scale
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        if kind == "classification":
            fitted = LogisticRegression(C=LINEAR_C, solver="lbfgs", max_iter=2_000, random_state=seed)
            fitted.fit(standardised, labels)
            coefficients, intercept, name = fitted.coef_[0], float(fitted.intercept_[0]), "logistic"
            params: dict[str, Any] = {"C": LINEAR_C, "solver": "lbfgs", "max_iter": 2_000}
        else:
            fitted = Ridge(alpha=RIDGE_ALPHA, solver="cholesky")
            fitted.fit(standardised, labels)
            coefficients, intercept, name = fitted.coef_, float(fitted.intercept_), "ridge"
            params = {"alpha": RIDGE_ALPHA, "solver": "cholesky"}
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    linear = _Linear(name, indicators, mean, scale, np.asarray(coefficients, dtype=np.float64), intercept)
    return linear, {
        "params": {**params, "features": "sign(x)*log1p(|x|), NaN->0 + indicator, standardised"},
        "rows": int(labels.shape[0]),
        "converged": converged,
    }


def _fit_sigmoid(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling with Platt's smoothed targets (no infinite weights when a class is separable)."""
    positives = float(labels.sum())
    negatives = float(labels.shape[0]) - positives
    target = np.where(labels > 0.5, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * raw + ab[1]
        p = expit(z)
        # -[t log p + (1-t) log(1-p)] written with logaddexp for stability.
        value = float(np.sum(np.logaddexp(0.0, z) - target * z))
        gradient = p - target
        return value, np.array([float(np.dot(gradient, raw)), float(gradient.sum())])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def _calibrate(raw: np.ndarray, labels: np.ndarray, method: Calibration) -> _Calibrator:
    if method == "isotonic" or (method == "auto" and labels.shape[0] >= ISOTONIC_MIN_ROWS):
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
        return _Calibrator(
            "isotonic",
            x=tuple(float(v) for v in isotonic.X_thresholds_),
            y=tuple(float(v) for v in isotonic.y_thresholds_),
        )
    a, b = _fit_sigmoid(raw, labels)
    return _Calibrator("sigmoid", a=a, b=b)


def _scale(raw: np.ndarray, values: np.ndarray) -> _Calibrator | None:
    """A regression's calibration: predictions scaled so that the validation cutoff's total is what
    its people spent. Cumulative columns (all-time counts and revenue, tenure) grow with the history, so
    trees trained on older cutoffs overestimate at newer ones; one factor fitted one horizon later
    corrects the level and keeps the ranking. None when the predicted total is not positive."""
    predicted = float(np.sum(raw))
    if not predicted > 0:
        return None
    return _Calibrator("scale", a=float(np.sum(values)) / predicted)


def _outside(raw: np.ndarray, fitted: np.ndarray) -> float:
    """The share of `raw` scores outside the range the calibrator was fitted on."""
    if raw.shape[0] == 0:
        return math.nan
    return float(np.mean((raw < fitted.min()) | (raw > fitted.max())))


def _metrics(kind: Kind, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float | int]:
    if kind == "classification":
        return quality.classification_metrics(labels, predictions)
    return quality.regression_metrics(labels, predictions)


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so the report is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check(kind: Kind, feature_names: list[str], splits: Mapping[str, Split]) -> None:
    if kind not in ("classification", "regression"):
        raise ValueError(f"unknown kind {kind!r}")
    for name, split in splits.items():
        x, y = split.features, split.labels
        if x.ndim != 2 or x.shape[1] != len(feature_names):
            raise ValueError(f"{name}: features must be (rows, {len(feature_names)}), got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"{name}: {y.shape} labels for {x.shape[0]} rows")
        if not np.isfinite(y).all():
            raise ValueError(f"{name}: labels must be finite")
        if kind == "classification" and not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"{name}: classification labels must be 0 or 1")
        if name in ("train", "validation"):
            if x.shape[0] == 0:
                raise ValueError(f"{name}: no rows")
            if kind == "classification" and np.unique(y).shape[0] < 2:
                raise ValueError(f"{name}: needs both classes to train and calibrate")


def train(
    *,
    kind: Kind,
    feature_names: list[str],
    train: Split,
    validation: Split,
    test: Split,
    seed: int,
    calibration: Calibration = "auto",
) -> Training:
    """Fit both candidates on `train`, pick the better on `validation` (AUC; RMSE for a regression),
    calibrate a classifier on `validation`, and measure everything on `test`.

    The validation split also stops LightGBM's boosting early, so its validation figures are slightly
    optimistic; the test split is touched by nothing but the measurements.

    `calibration` chooses the classifier's calibrator: "auto" (isotonic from 1,000 validation rows,
    sigmoid below), or one of them always. Isotonic is the more flexible map but holds its end values
    outside the validation's score range; when the scored population drifts past it (people lapsed longer
    than anyone at the validation cutoff), Platt's sigmoid extrapolates instead. The report's
    `calibration.test_outside_range` says how many test rows fell outside that range.

    Raises:
        ValueError: mismatched shapes, labels that are not 0/1 (classification) or not finite, an empty
            train or validation split, or one of them holding a single class (nothing to rank or calibrate).
    """
    cast = {
        name: Split(_matrix(s.features, len(feature_names)), np.asarray(s.labels, dtype=np.float64))
        for name, s in (("train", train), ("validation", validation), ("test", test))
    }
    _check(kind, feature_names, cast)
    if calibration not in ("auto", "isotonic", "sigmoid"):
        raise ValueError(f"unknown calibration {calibration!r}")
    train, validation, test = cast["train"], cast["validation"], cast["test"]

    trees, trees_info = _fit_trees(kind, train, validation, seed)
    linear, linear_info = _fit_linear(kind, train, seed)
    candidates: dict[str, Any] = {}
    scores: dict[str, float] = {}
    for estimator, info in ((trees, trees_info), (linear, linear_info)):
        validation_raw, test_raw = estimator.raw(validation.features), estimator.raw(test.features)
        if kind == "classification":
            validation_raw, test_raw = expit(validation_raw), expit(test_raw)
        validation_metrics = _metrics(kind, validation.labels, validation_raw)
        candidates[estimator.name] = {
            **info,
            "validation": validation_metrics,
            "test": _metrics(kind, test.labels, test_raw),
            "importance": estimator.importance(feature_names),
        }
        scores[estimator.name] = float(validation_metrics["auc" if kind == "classification" else "rmse"])

    # Ties (and an undefined score) go to the simpler baseline.
    if kind == "classification":
        trees_better = scores[trees.name] > scores[linear.name]
    else:
        trees_better = scores[trees.name] < scores[linear.name]
    winner: _Estimator = trees if trees_better else linear

    validation_raw = winner.raw(validation.features)
    if kind == "classification":
        calibrator: _Calibrator | None = _calibrate(validation_raw, validation.labels, calibration)
    else:
        calibrator = _scale(validation_raw, validation.labels)
    model = Model(kind, feature_names, winner, calibrator)
    test_predictions = model.predict(test.features)
    report: dict[str, Any] = {
        "kind": kind,
        "seed": seed,
        "feature_names": feature_names,
        "winner": winner.name,
        "selection_metric": "auc" if kind == "classification" else "rmse",
        "calibration": {
            "method": calibrator.method,
            "rows": int(validation.labels.shape[0]),
            "test_outside_range": _outside(winner.raw(test.features), validation_raw),
        }
        if calibrator
        else None,
        "splits": {
            name: {
                "rows": int(s.labels.shape[0]),
                **({"positives": int(s.labels.sum())} if kind == "classification" else {}),
            }
            for name, s in cast.items()
        },
        "candidates": candidates,
        "test": _metrics(kind, test.labels, test_predictions),
    }
    if kind == "classification":
        report["test_calibration_bins"] = quality.calibration_bins(test.labels, test_predictions)
        report["test_cohorts"] = quality.cohorts(test.labels, quality.percentiles(test_predictions))
    return Training(model=model, winner=winner.name, report=_json_safe(report))
