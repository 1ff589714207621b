"""How good a prediction is: the metrics of a model's report, its charts and its score percentiles.

Plain numpy over (labels, scores) arrays, so the same code measures a candidate during training, the
calibrated winner on the test split, and any offline experiment. Top-k selections ("the best 10%") take
ceil(k% of n) rows, best score first, ties broken by row index, so every figure is deterministic.
Undefined figures (AUC with one class, lift with no positive, ...) are NaN rather than an exception: a
report still says what it can.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata

TOP_PERCENTS = (5, 10, 20)
_EPS = 1e-15


def _vector(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _pair(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _vector(labels, "labels")
    s = _vector(scores, "scores")
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} and {s.shape[0]}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def _top_rows(count: int, percent: int) -> int:
    """ceil(percent% of count), in integers (0.1 * 100 is not exactly 10 in floating point)."""
    return (count * percent + 99) // 100


def ranking(scores: np.ndarray) -> np.ndarray:
    """Row indices, best (highest) score first, ties in row order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def auc(labels: Any, scores: Any) -> float:
    """ROC AUC; NaN when the labels hold one class only (no pair to rank)."""
    y, s = _pair(labels, scores)
    positives = int((y > 0.5).sum())
    if positives == 0 or positives == y.shape[0]:
        return math.nan
    # Mann-Whitney U from one ranking (ties share their mean rank): what roc_auc_score computes,
    # without its validation and curve, several times faster on the leak check's many columns.
    ranks = rankdata(s)
    negatives = y.shape[0] - positives
    return float((ranks[y > 0.5].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def calibration_bins(labels: Any, probabilities: Any, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of the predicted probability on [0, 1]: the reliability diagram's points.

    Empty bins are kept (rows 0, means NaN) so a chart or report shows where the model never predicts.
    """
    y, p = _pair(labels, probabilities)
    index = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)
    rows = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    result = []
    for b in range(bins):
        n = int(rows[b])
        result.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "rows": n,
                "mean_predicted": float(predicted[b] / n) if n else math.nan,
                "observed_rate": float(observed[b] / n) if n else math.nan,
            }
        )
    return result


def expected_calibration_error(labels: Any, probabilities: Any, bins: int = 10) -> float:
    """Row-weighted mean of |mean predicted - observed rate| over equal-width probability bins."""
    table = calibration_bins(labels, probabilities, bins)
    total = sum(b["rows"] for b in table)
    if total == 0:
        return math.nan
    return float(sum(b["rows"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in table if b["rows"]) / total)


def classification_metrics(labels: Any, probabilities: Any) -> dict[str, float | int]:
    """The figures a propensity score is judged by: ranking (AUC, precision and lift in the top 5/10/20%),
    probability quality (log loss, Brier score) and calibration (ECE over 10 bins)."""
    y, p = _pair(labels, probabilities)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("classification labels must be 0 or 1")
    n = y.shape[0]
    positives = int((y > 0.5).sum())
    base_rate = positives / n if n else math.nan
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    metrics: dict[str, float | int] = {
        "rows": n,
        "positives": positives,
        "base_rate": base_rate,
        "auc": auc(y, p) if n else math.nan,
        "log_loss": float(-np.mean(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped))) if n else math.nan,
        "brier": float(np.mean((p - y) ** 2)) if n else math.nan,
    }
    order = ranking(p)
    for percent in TOP_PERCENTS:
        k = _top_rows(n, percent)
        precision = float(y[order[:k]].mean()) if k else math.nan
        metrics[f"precision_at_{percent}"] = precision
        metrics[f"lift_at_{percent}"] = precision / base_rate if base_rate and base_rate > 0 else math.nan
    metrics["ece"] = expected_calibration_error(y, p)
    return metrics


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank (as Spearman's correlation needs)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.shape[0]]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else math.nan


def regression_metrics(values: Any, predictions: Any) -> dict[str, float | int]:
    """Errors (RMSE, MAE, R²), ranking (Spearman) and how much of the total value the best-predicted
    10% / 20% of rows hold (what a "top customers by predicted value" audience would capture)."""
    y, f = _pair(values, predictions)
    n = y.shape[0]
    if n == 0:
        return {"rows": 0, "mean": math.nan, "rmse": math.nan, "mae": math.nan, "r2": math.nan, "spearman": math.nan}
    residual = y - f
    total_squares = float(((y - y.mean()) ** 2).sum())
    metrics: dict[str, float | int] = {
        "rows": n,
        "mean": float(y.mean()),
        "rmse": math.sqrt(float((residual**2).mean())),
        "mae": float(np.abs(residual).mean()),
        "r2": 1.0 - float((residual**2).sum()) / total_squares if total_squares > 0 else math.nan,
        "spearman": _correlation(_average_ranks(y), _average_ranks(f)),
    }
    order = ranking(f)
    total = float(y.sum())
    for percent in (10, 20):
        k = _top_rows(n, percent)
        metrics[f"value_share_top_{percent}"] = float(y[order[:k]].sum()) / total if total != 0 else math.nan
    return metrics


def gains_curve(labels: Any, scores: Any, points: int = 101) -> dict[str, list[float]]:
    """Cumulative gains: the share of all positives among the best-scored share of the population,
    at `points` evenly spaced shares from 0 to 1 (a random order captures its own share)."""
    if points < 2:
        raise ValueError("a gains curve needs at least 2 points")
    y, s = _pair(labels, scores)
    n = y.shape[0]
    captured_rows = np.r_[0.0, np.cumsum((y > 0.5)[ranking(s)], dtype=np.float64)]
    positives = captured_rows[-1]
    population = [i / (points - 1) for i in range(points)]
    # Rows targeted at point i: ceil(i * n / (points - 1)), in integers.
    targeted = [(i * n + points - 2) // (points - 1) for i in range(points)]
    captured = [float(captured_rows[k] / positives) if positives > 0 else math.nan for k in targeted]
    return {"population": population, "captured": captured}


def percentiles(scores: Any) -> np.ndarray:
    """Segment's 0-1 percentile of each score: the share of scored rows with a strictly lower score.

    Equal scores share a value; the best row gets (n-1)/n when it is alone at the top. So
    `percentile >= 0.8` selects the top 20% (give or take ties), whatever the score's scale.
    """
    s = _vector(scores, "scores")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n = s.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    # One sort: each row's rank is where its run of equal scores starts (a search of the sorted
    # scores for each row costs three times as much on a million rows).
    order = np.argsort(s)
    ordered = s[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    below = np.empty(n, dtype=np.float64)
    below[order] = run_start
    share: np.ndarray = below / n
    return share


def deciles(percentiles: Any) -> np.ndarray:
    """Decile 1..10 of 0-1 percentiles, 10 the best: decile d holds [(d-1)/10, d/10).

    A tolerance of 1e-9 absorbs representation error (0.7 is not exactly 7/10), far below 1/n.
    """
    p = _vector(percentiles, "percentiles")
    decile: np.ndarray = np.clip(np.floor(p * 10.0 + 1e-9).astype(np.int64) + 1, 1, 10)
    return decile


def cohorts(labels: Any, percentiles: Any) -> list[dict[str, float | int]]:
    """Conversions per decile cohort, best decile first: does the score order people as it claims?"""
    y = _vector(labels, "labels")
    d = deciles(percentiles)
    if y.shape != d.shape:
        raise ValueError(f"labels and percentiles differ in length: {y.shape[0]} and {d.shape[0]}")
    result: list[dict[str, float | int]] = []
    for decile in range(10, 0, -1):
        members = d == decile
        rows = int(members.sum())
        positives = int((y[members] > 0.5).sum())
        result.append(
            {"decile": decile, "rows": rows, "positives": positives, "rate": positives / rows if rows else math.nan}
        )
    return result
