"""The Predictions modelling layer (cdp_server.predictions): metrics, training, calibration, explanations,
serialisation and charts.

Populations are drawn with numpy's Generator(seed) from a known truth: each row's true purchase probability
is a function of recency/frequency-like features (with missing values), so the best achievable ranking is
the oracle's (the true probabilities as scores) and the model is judged against it, not against numbers
written down once. Metrics are checked against straightforward reference implementations (brute-force
pairwise AUC, sorting by hand), several by hypothesis.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from scipy.stats import spearmanr

from cdp_server.predictions import charts, quality
from cdp_server.predictions.model import ISOTONIC_MIN_ROWS, Model, Split, Training, train

FEATURES = ["days_since_last", "count_90d", "revenue_all", "gap_mean_days"]
SEED = 7


# --- populations with a known truth ---------------------------------------------------------------


def _draw(rng: np.random.Generator, rows: int) -> np.ndarray:
    recency = rng.exponential(60.0, rows)
    count = rng.poisson(2.0, rows).astype(np.float64)
    revenue = rng.gamma(2.0, 30.0, rows) * (1 + count)
    gap = np.where(count >= 2, rng.exponential(30.0, rows), np.nan)
    return np.column_stack([recency, count, revenue, gap])


def _nonlinear_truth(x: np.ndarray) -> np.ndarray:
    """Thresholds and an interaction: what trees find and a linear model in log features cannot."""
    recency, count, gap = x[:, 0], x[:, 1], x[:, 3]
    z = -2.0 + 2.5 * (recency < 21) + 1.5 * ((count >= 3) & (recency < 90)) - 1.0 * (np.nan_to_num(gap, nan=99) < 10)
    return np.asarray(expit(z))


def _linear_truth(x: np.ndarray) -> np.ndarray:
    """Linear in the baseline's own log features: the baseline is the true model family."""
    return np.asarray(expit(1.0 - 0.6 * np.log1p(x[:, 0]) + 0.9 * np.log1p(x[:, 1])))


def _population(truth: str, rows: int, seed: int) -> tuple[Split, np.ndarray]:
    """A split drawn from a truth, with each row's true probability."""
    rng = np.random.default_rng(seed)
    x = _draw(rng, rows)
    p = _nonlinear_truth(x) if truth == "nonlinear" else _linear_truth(x)
    y = (rng.random(rows) < p).astype(np.float64)
    return Split(x.astype(np.float32), y), p


def _fit(truth: str, train_rows: int = 20_000, validation_rows: int = 5_000, seed: int = SEED) -> Training:
    return train(
        kind="classification",
        feature_names=FEATURES,
        train=_population(truth, train_rows, 1)[0],
        validation=_population(truth, validation_rows, 2)[0],
        test=_population(truth, 10_000, 3)[0],
        seed=seed,
    )


@pytest.fixture(scope="module")
def nonlinear() -> Training:
    return _fit("nonlinear")


@pytest.fixture(scope="module")
def linear() -> Training:
    return _fit("linear")


# --- quality.py against reference implementations ----------------------------------------------------


def _pairwise_auc(labels: list[int], scores: list[float]) -> float:
    positives = [s for y, s in zip(labels, scores, strict=True) if y]
    negatives = [s for y, s in zip(labels, scores, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _top(labels: list[int], scores: list[float], percent: int) -> list[int]:
    """The labels of the best ceil(percent% of n) rows, best score first, ties by row index."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return [labels[i] for i in order[: math.ceil(len(scores) * percent / 100 - 1e-12)]]


labelled_scores = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        # Few distinct values: plenty of ties.
        st.lists(st.integers(0, 8).map(lambda v: v / 8), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(labelled_scores)
def test_auc_matches_brute_force_pairs(case: tuple[list[int], list[float]]) -> None:
    labels, scores = case
    got = quality.auc(np.array(labels), np.array(scores))
    if 0 < sum(labels) < len(labels):
        assert got == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)
    else:
        assert math.isnan(got)


@settings(max_examples=200, deadline=None)
@given(labelled_scores)
def test_precision_and_lift_take_the_best_rows_ties_by_index(case: tuple[list[int], list[float]]) -> None:
    labels, scores = case
    metrics = quality.classification_metrics(np.array(labels), np.array(scores))
    base_rate = sum(labels) / len(labels)
    assert metrics["base_rate"] == pytest.approx(base_rate)
    for percent in (5, 10, 20):
        top = _top(labels, scores, percent)
        assert metrics[f"precision_at_{percent}"] == pytest.approx(sum(top) / len(top))
        if base_rate > 0:
            assert metrics[f"lift_at_{percent}"] == pytest.approx(sum(top) / len(top) / base_rate)
        else:
            assert math.isnan(metrics[f"lift_at_{percent}"])


def test_probability_metrics_match_their_definitions() -> None:
    rng = np.random.default_rng(11)
    p = rng.random(2_000)
    p[:3] = [0.0, 1.0, 1.0]  # exact 0 and 1: the log loss clips instead of going infinite
    y = (rng.random(2_000) < p).astype(np.float64)
    y[:3] = [1.0, 0.0, 1.0]
    metrics = quality.classification_metrics(y, p)
    clipped = [min(max(v, 1e-15), 1 - 1e-15) for v in p]
    log_loss = -sum(math.log(c) if t else math.log(1 - c) for t, c in zip(y, clipped, strict=True)) / len(y)
    assert metrics["log_loss"] == pytest.approx(log_loss, rel=1e-9)
    assert metrics["brier"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, y, strict=True)) / len(y))
    assert (metrics["rows"], metrics["positives"]) == (2_000, int(y.sum()))
    # ECE by hand: 10 equal-width bins, p == 1.0 in the last one.
    bins: dict[int, list[tuple[float, float]]] = {}
    for v, t in zip(p, y, strict=True):
        bins.setdefault(min(int(v * 10), 9), []).append((v, t))
    ece = sum(abs(sum(v for v, _ in b) / len(b) - sum(t for _, t in b) / len(b)) * len(b) for b in bins.values())
    assert metrics["ece"] == pytest.approx(ece / len(y))
    table = quality.calibration_bins(y, p)
    assert [b["rows"] for b in table] == [len(bins.get(i, [])) for i in range(10)]
    assert table[9]["high"] == 1.0
    assert table[9]["observed_rate"] == pytest.approx(sum(t for _, t in bins[9]) / len(bins[9]))


def test_empty_calibration_bins_are_reported_empty() -> None:
    table = quality.calibration_bins(np.array([0.0, 1.0]), np.array([0.05, 0.95]))
    assert [b["rows"] for b in table] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert math.isnan(table[4]["mean_predicted"])


def test_regression_metrics_match_their_definitions() -> None:
    rng = np.random.default_rng(5)
    values = rng.gamma(1.5, 40.0, 1_000)
    values[::7] = 0.0  # ties, as in revenue
    predictions = values * rng.lognormal(0.0, 0.5, 1_000) + rng.normal(0, 5, 1_000)
    metrics = quality.regression_metrics(values, predictions)
    residual = values - predictions
    assert metrics["rmse"] == pytest.approx(math.sqrt(np.mean(residual**2)))
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(residual)))
    assert metrics["r2"] == pytest.approx(1 - np.sum(residual**2) / np.sum((values - values.mean()) ** 2))
    assert metrics["spearman"] == pytest.approx(spearmanr(values, predictions).statistic)
    order = sorted(range(1_000), key=lambda i: (-predictions[i], i))
    for percent in (10, 20):
        top = order[: 1_000 * percent // 100]
        assert metrics[f"value_share_top_{percent}"] == pytest.approx(values[top].sum() / values.sum())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=80))
def test_percentiles_are_the_share_strictly_below(scores: list[float]) -> None:
    got = quality.percentiles(np.array(scores))
    n = len(scores)
    for score, percentile in zip(scores, got, strict=True):
        assert percentile == sum(s < score for s in scores) / n
    best = max(scores)
    if scores.count(best) == 1:
        assert got[scores.index(best)] == (n - 1) / n
    d = quality.deciles(got)
    assert d.min() >= 1 and d.max() <= 10
    for percentile, decile in zip(got, d, strict=True):
        # percentile >= 0.8 is exactly deciles 9 and 10; decile d holds [(d-1)/10, d/10).
        assert (percentile >= 0.8) == (decile >= 9)
        assert (decile - 1) / 10 <= percentile + 1e-12 and percentile < decile / 10
    # Higher score, higher or equal percentile and decile.
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(got[order]) >= 0) and np.all(np.diff(d[order]) >= 0)


def test_percentiles_select_the_top_share_on_distinct_scores() -> None:
    scores = np.random.default_rng(3).random(1_000)
    p = quality.percentiles(scores)
    assert int((p >= 0.8).sum()) == 200
    assert int((quality.deciles(p) == 10).sum()) == 100
    assert np.array_equal(p, quality.percentiles(scores))


def test_cohorts_count_each_decile_best_first() -> None:
    rng = np.random.default_rng(9)
    scores = rng.random(3_000)
    labels = (rng.random(3_000) < scores).astype(np.float64)
    table = quality.cohorts(labels, quality.percentiles(scores))
    assert [c["decile"] for c in table] == list(range(10, 0, -1))
    assert sum(c["rows"] for c in table) == 3_000
    assert sum(c["positives"] for c in table) == int(labels.sum())
    top = _top([int(v) for v in labels], list(scores), 10)
    assert (table[0]["rows"], table[0]["positives"]) == (len(top), sum(top))
    rates = [c["rate"] for c in table]
    assert rates[0] > rates[4] > rates[9]  # a score that follows the truth orders the cohorts


def test_gains_curve_counts_positives_in_the_best_share() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(997)
    labels = (rng.random(997) < scores).astype(np.float64)
    curve = quality.gains_curve(labels, scores)
    assert curve["population"][0] == 0 and curve["population"][-1] == 1
    assert curve["captured"][0] == 0 and curve["captured"][-1] == 1
    assert all(b >= a for a, b in zip(curve["captured"], curve["captured"][1:], strict=False))
    for percent in (5, 10, 20, 50):
        top = _top([int(v) for v in labels], list(scores), percent)
        assert curve["captured"][percent] == pytest.approx(sum(top) / labels.sum())


# --- training against the oracle ------------------------------------------------------------------------


def _oracle_auc(truth: str) -> float:
    test, p = _population(truth, 10_000, 3)
    return quality.auc(test.labels, p)


def test_nonlinear_truth_lightgbm_wins_near_the_oracle(nonlinear: Training) -> None:
    report = nonlinear.report
    assert nonlinear.winner == report["winner"] == "lightgbm"
    trees, baseline = report["candidates"]["lightgbm"], report["candidates"]["logistic"]
    assert trees["validation"]["auc"] > baseline["validation"]["auc"]
    assert trees["test"]["auc"] > baseline["test"]["auc"]
    oracle = _oracle_auc("nonlinear")
    assert report["test"]["auc"] >= oracle - 0.01
    assert report["test"]["auc"] <= oracle + 0.01  # an AUC above the truth's would mean a leak
    assert (report["calibration"]["method"], report["calibration"]["rows"]) == ("isotonic", 5_000)
    assert report["test"]["ece"] <= 0.02
    # The calibrated model on the test split also predicts the right number of buyers.
    test = _population("nonlinear", 10_000, 3)[0]
    assert nonlinear.model.predict(test.features).mean() == pytest.approx(test.labels.mean(), abs=0.01)


def test_linear_truth_the_baseline_wins_or_ties(linear: Training) -> None:
    report = linear.report
    trees, baseline = report["candidates"]["lightgbm"], report["candidates"]["logistic"]
    assert baseline["validation"]["auc"] >= trees["validation"]["auc"] - 0.002
    assert baseline["test"]["auc"] >= _oracle_auc("linear") - 0.005
    assert report["test"]["auc"] >= _oracle_auc("linear") - 0.01
    assert report["test"]["ece"] <= 0.02


def test_report_is_strict_json_with_both_candidates(nonlinear: Training) -> None:
    report = json.loads(json.dumps(nonlinear.report, allow_nan=False))
    assert report["seed"] == SEED and report["kind"] == "classification"
    assert report["splits"]["train"]["rows"] == 20_000
    assert report["splits"]["validation"]["positives"] == int(_population("nonlinear", 5_000, 2)[0].labels.sum())
    for name in ("lightgbm", "logistic"):
        candidate = report["candidates"][name]
        assert set(candidate) >= {"params", "validation", "test", "importance"}
        assert set(FEATURES) <= set(candidate["importance"])
    assert report["candidates"]["lightgbm"]["params"]["deterministic"] is True
    # Recency drives the truth most; revenue not at all.
    gain = report["candidates"]["lightgbm"]["importance"]
    assert max(gain, key=gain.get) == "days_since_last"
    assert gain["revenue_all"] < gain["days_since_last"] / 10
    assert [c["decile"] for c in report["test_cohorts"]] == list(range(10, 0, -1))


@pytest.mark.parametrize("validation_rows", [ISOTONIC_MIN_ROWS - 1, ISOTONIC_MIN_ROWS])
def test_sigmoid_below_the_isotonic_threshold_isotonic_from_it(validation_rows: int) -> None:
    training = _fit("nonlinear", train_rows=4_000, validation_rows=validation_rows)
    expected = "isotonic" if validation_rows >= ISOTONIC_MIN_ROWS else "sigmoid"
    assert training.model.calibration == training.report["calibration"]["method"] == expected
    validation = _population("nonlinear", validation_rows, 2)[0]
    calibrated = training.model.predict(validation.features)
    assert calibrated.min() >= 0 and calibrated.max() <= 1
    # Fitted on the validation split: isotonic reproduces its rate exactly, Platt (smoothed targets) nearly.
    tolerance = 1e-9 if expected == "isotonic" else 2 / validation_rows
    assert calibrated.mean() == pytest.approx(validation.labels.mean(), abs=tolerance)
    # A monotone map of the raw score: the ranking never inverts.
    raw = training.model.raw(validation.features)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(calibrated[order]) >= -1e-12)


def test_calibration_can_be_chosen_and_its_range_is_reported() -> None:
    """Validation people all bought recently; test people have lapsed for longer than any of them. Isotonic
    holds its end value for all the lapsed (one probability for everyone past the range); the sigmoid keeps
    ranking them; the report says what share of the test split lay outside the calibrated range."""
    validation, _ = _population("linear", 2_000, 2)
    recent = validation.features[:, 0] < 30
    validation = Split(validation.features[recent], validation.labels[recent])
    test, _ = _population("linear", 5_000, 3)
    results = {
        method: train(
            kind="classification",
            feature_names=FEATURES,
            train=_population("linear", 10_000, 1)[0],
            validation=validation,
            test=test,
            seed=SEED,
            calibration=method,
        )
        for method in ("isotonic", "sigmoid")
    }
    assert validation.labels.shape[0] < ISOTONIC_MIN_ROWS  # "isotonic" was asked for, not chosen by size
    for method, training in results.items():
        assert training.model.calibration == training.report["calibration"]["method"] == method
        raw = training.model.raw(test.features)
        fitted = training.model.raw(validation.features)
        outside = (raw < fitted.min()) | (raw > fitted.max())
        assert training.report["calibration"]["test_outside_range"] == pytest.approx(outside.mean())
        assert outside.mean() > 0.05
        below = raw < fitted.min()
        distinct = np.unique(training.model.predict(test.features[below])).shape[0]
        assert distinct == 1 if method == "isotonic" else distinct > 100
    with pytest.raises(ValueError, match="unknown calibration"):
        train(
            kind="classification",
            feature_names=FEATURES,
            train=test,
            validation=test,
            test=test,
            seed=1,
            calibration="beta",  # type: ignore[arg-type]
        )


# --- explanations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("truth", ["nonlinear", "linear"])
def test_explanations_sum_to_the_raw_score(truth: str, nonlinear: Training, linear: Training) -> None:
    model = (nonlinear if truth == "nonlinear" else linear).model
    test = _population(truth, 2_000, 3)[0]
    explanation = model.explain(test.features, top=3)
    raw = model.raw(test.features)
    assert np.max(np.abs(explanation.expected_value + explanation.total - raw)) < 1e-6
    assert explanation.features.dtype == np.int32 and explanation.features.shape == (2_000, 3)
    assert explanation.contributions.dtype == np.float64
    magnitude = np.abs(explanation.contributions)
    assert np.all(magnitude[:, :-1] >= magnitude[:, 1:])
    # All features: the top-k contributions are exactly the k largest and the rest adds up to the total.
    full = model.explain(test.features, top=len(FEATURES))
    assert np.allclose(full.contributions.sum(axis=1), full.total, atol=1e-9)
    assert np.array_equal(full.features[:, :3], explanation.features)
    assert np.all(np.sort(full.features, axis=1) == np.arange(len(FEATURES)))


def test_the_baseline_explains_with_its_coefficients(linear: Training) -> None:
    model = linear.model
    assert model.estimator_name == "logistic"  # the true model family wins on this draw
    test = _population("linear", 500, 3)[0]
    # Two rows that differ in one feature differ in that feature's contribution only, by the raw difference.
    a, b = test.features[:1].copy(), test.features[:1].copy()
    b[0, 1] += 3.0
    ea, eb = model.explain(a, top=4), model.explain(b, top=4)
    ca = np.zeros(4)
    cb = np.zeros(4)
    ca[ea.features[0]] = ea.contributions[0]
    cb[eb.features[0]] = eb.contributions[0]
    changed = np.flatnonzero(~np.isclose(ca, cb))
    assert changed.tolist() == [1]
    assert cb[1] - ca[1] == pytest.approx(float(model.raw(b)[0] - model.raw(a)[0]))
    # Contributions are deviations from the training mean: the expected value is the mean training score.
    training_rows = _population("linear", 20_000, 1)[0].features
    assert ea.expected_value == pytest.approx(float(np.mean(model.raw(training_rows))))


# --- serialisation and determinism ----------------------------------------------------------------------


@pytest.mark.parametrize("truth", ["nonlinear", "linear"])
def test_round_trip_predicts_identically(truth: str, nonlinear: Training, linear: Training) -> None:
    model = (nonlinear if truth == "nonlinear" else linear).model
    data = model.to_bytes()
    assert b"pickle" not in data
    json.loads(data)  # plain JSON
    loaded = Model.from_bytes(data)
    test = _population(truth, 2_000, 3)[0]
    assert np.array_equal(loaded.predict(test.features), model.predict(test.features))
    assert np.array_equal(loaded.raw(test.features), model.raw(test.features))
    a, b = loaded.explain(test.features), model.explain(test.features)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.contributions, b.contributions)
    assert loaded.to_bytes() == data
    assert loaded.feature_names == FEATURES and loaded.calibration == model.calibration


def test_from_bytes_refuses_other_documents() -> None:
    with pytest.raises(ValueError, match="not a"):
        Model.from_bytes(json.dumps({"format": "something else"}).encode())


def _fingerprint(training: Training) -> str:
    test = _population("nonlinear", 2_000, 3)[0]
    digest = hashlib.sha256(training.model.to_bytes())
    digest.update(training.model.predict(test.features).tobytes())
    digest.update(json.dumps(training.report, sort_keys=True).encode())
    return digest.hexdigest()


def test_training_is_deterministic_in_process_and_across_processes(nonlinear: Training) -> None:
    again = _fit("nonlinear")
    assert again.model.to_bytes() == nonlinear.model.to_bytes()
    assert _fingerprint(again) == _fingerprint(nonlinear)
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_prediction_model as t\n"
        "print(t._fingerprint(t._fit('nonlinear')))\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert child.stdout.strip() == _fingerprint(nonlinear)
    # A different seed is a different model (the seed reaches LightGBM).
    assert _fit("nonlinear", seed=SEED + 1).model.to_bytes() != nonlinear.model.to_bytes()


# --- regression ------------------------------------------------------------------------------------


def test_regression_learns_the_expected_value() -> None:
    """Revenue-like target: E[y | x] is known, the noise is not learnable, so the test RMSE should be the
    noise's and the predictions should track the expected value."""
    noise = 20.0

    def draw(rows: int, seed: int) -> tuple[Split, np.ndarray]:
        rng = np.random.default_rng(seed)
        x = _draw(rng, rows)
        expected = 50.0 + 30.0 * np.minimum(x[:, 1], 4) + 40.0 * (x[:, 0] < 30)
        return Split(x.astype(np.float32), expected + rng.normal(0.0, noise, rows)), expected

    (tr, _), (va, _), (te, expected) = draw(10_000, 1), draw(3_000, 2), draw(5_000, 3)
    training = train(kind="regression", feature_names=FEATURES, train=tr, validation=va, test=te, seed=SEED)
    report = training.report
    assert training.winner == "lightgbm"  # thresholds: the trees fit, the ridge on log features cannot
    # Calibrated by one factor (the validation total over the predicted one): near 1 here, where the
    # cutoffs are alike.
    assert report["calibration"]["method"] == "scale"
    predictions, raw = training.model.predict(te.features), training.model.raw(te.features)
    factor = float(np.sum(va.labels) / np.sum(training.model.raw(va.features)))
    assert factor == pytest.approx(1.0, abs=0.02)
    assert np.allclose(predictions, factor * raw)
    assert np.sqrt(np.mean((predictions - expected) ** 2)) < noise / 4
    assert report["test"]["rmse"] == pytest.approx(noise, rel=0.05)
    assert report["test"]["rmse"] < report["candidates"]["ridge"]["test"]["rmse"]
    explanation = training.model.explain(te.features[:200])
    assert np.max(np.abs(explanation.expected_value + explanation.total - raw[:200])) < 1e-6
    assert np.array_equal(Model.from_bytes(training.model.to_bytes()).predict(te.features), predictions)


# --- refusals ---------------------------------------------------------------------------------------


def test_train_refuses_what_it_cannot_fit() -> None:
    split, _ = _population("linear", 500, 1)
    one_class = Split(split.features, np.zeros(500))
    with pytest.raises(ValueError, match="both classes"):
        train(kind="classification", feature_names=FEATURES, train=one_class, validation=split, test=split, seed=1)
    with pytest.raises(ValueError, match="0 or 1"):
        bad = Split(split.features, split.labels * 2)
        train(kind="classification", feature_names=FEATURES, train=bad, validation=split, test=split, seed=1)
    with pytest.raises(ValueError, match="features must be"):
        train(kind="classification", feature_names=FEATURES[:3], train=split, validation=split, test=split, seed=1)


# --- charts -----------------------------------------------------------------------------------------


def test_charts_are_deterministic_pngs(nonlinear: Training) -> None:
    test = _population("nonlinear", 10_000, 3)[0]
    p = nonlinear.model.predict(test.features)
    bins = quality.calibration_bins(test.labels, p)
    curve = quality.gains_curve(test.labels, p)
    for first, second in (
        (charts.calibration_png(bins), charts.calibration_png(bins)),
        (charts.gains_png(curve, baseline_label="random"), charts.gains_png(curve, baseline_label="random")),
    ):
        assert first.startswith(b"\x89PNG\r\n\x1a\n") and len(first) > 10_000
        assert first == second
    # Other values, other picture.
    assert charts.calibration_png(quality.calibration_bins(test.labels, np.sqrt(p))) != charts.calibration_png(bins)
