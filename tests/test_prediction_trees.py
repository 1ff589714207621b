"""The engine's walk of LightGBM trees (`_core.tree_scores`, what scoring uses) against LightGBM's
own predictor: the same raw scores to the last bit, whatever the missing values, objective and
column order; models it cannot score are refused, never scored wrongly."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from cdp_server import _core


def _data(seed: int, rows: int = 3_000, columns: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    x[:, 3] = np.round(x[:, 3])  # ties at the thresholds
    x[:5, 4] = 1e-38  # below LightGBM's zero threshold: read as 0
    signal = np.nan_to_num(x[:, 0]) + np.isnan(x[:, 1]) - np.nan_to_num(x[:, 2]) ** 2
    return x, signal + rng.normal(size=rows)


def _booster(params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> lgb.Booster:
    base = {"verbosity": -1, "num_leaves": 15, "min_data_in_leaf": 5, "seed": 1, "num_threads": 1}
    return lgb.train({**base, **params}, lgb.Dataset(x, label=y), num_boost_round=60)


def _rust(booster: lgb.Booster, rows: np.ndarray, columns: list[int]) -> np.ndarray:
    raw = _core.tree_scores(booster.model_to_string(), rows.tobytes(), rows.shape[1], columns)
    return np.frombuffer(raw, dtype="<f8")


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "binary"},
        {"objective": "regression"},
        {"objective": "binary", "zero_as_missing": True},
        {"objective": "binary", "use_missing": False},
        {"objective": "regression", "learning_rate": 0.3, "num_leaves": 63, "min_data_in_leaf": 1},
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_the_engines_scores_are_lightgbms_to_the_last_bit(params: dict[str, Any], seed: int) -> None:
    x, y = _data(seed)
    booster = _booster(params, x, (y > 0).astype(float) if params["objective"] == "binary" else y)
    rows = _data(seed + 100)[0]  # rows the model never saw, NaNs and zeros included
    expected = booster.predict(rows, raw_score=True)
    assert np.array_equal(_rust(booster, rows, list(range(rows.shape[1]))), expected)


def test_model_features_are_read_from_the_columns_named_for_them() -> None:
    x, y = _data(3)
    booster = _booster({"objective": "regression"}, x, y)
    rows = _data(4)[0]
    # The engine's rows hold the model's features shuffled among three unrelated columns.
    order = np.random.default_rng(5).permutation(rows.shape[1] + 3)
    wide = np.full((rows.shape[0], rows.shape[1] + 3), 7.0, dtype=np.float32)
    wide[:, order[: rows.shape[1]]] = rows
    scores = _rust(booster, np.ascontiguousarray(wide), [int(c) for c in order[: rows.shape[1]]])
    assert np.array_equal(scores, booster.predict(rows, raw_score=True))
    assert _rust(booster, wide[:0].copy(), [int(c) for c in order[: rows.shape[1]]]).shape == (0,)


def test_a_model_it_cannot_score_is_refused() -> None:
    x, y = _data(6)
    rows = x[:10].copy()
    multiclass = _booster({"objective": "multiclass", "num_class": 3}, x, np.digitize(y, [-1, 1]))
    with pytest.raises(_core.InvalidRequest, match="one tree per iteration"):
        _rust(multiclass, rows, list(range(rows.shape[1])))
    categorical = lgb.train(
        {"objective": "regression", "verbosity": -1, "min_data_in_leaf": 5, "min_data_per_group": 5},
        lgb.Dataset(np.abs(np.nan_to_num(x)).astype(np.int32).astype(np.float32), label=y, categorical_feature=[0]),
        num_boost_round=20,
    )
    assert "decision_type=1" in categorical.model_to_string() or "cat_boundaries" in categorical.model_to_string()
    with pytest.raises(_core.InvalidRequest, match="categorical"):
        _rust(categorical, rows, list(range(rows.shape[1])))
    booster = _booster({"objective": "binary"}, x, (y > 0).astype(float))
    with pytest.raises(_core.InvalidRequest, match="columns given"):
        _rust(booster, rows, list(range(rows.shape[1] - 1)))
    with pytest.raises(_core.InvalidRequest, match="column 12 of rows 12 wide"):
        _rust(booster, rows, [*range(rows.shape[1] - 1), 12])
    with pytest.raises(_core.InvalidRequest, match="not rows of"):
        _core.tree_scores(booster.model_to_string(), rows.tobytes()[:-4], rows.shape[1], list(range(rows.shape[1])))
